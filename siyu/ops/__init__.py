"""Running siyu in production: health, leadership, metrics, rate limits, backups and retention."""
