"""Full sync from WeCom, resignation / on-job transfers and staff behaviour data."""
