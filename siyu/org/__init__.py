"""Organisation: regions, stores, staff."""
