"""Data retention: old append-only events archived to Parquet files, then removed."""
