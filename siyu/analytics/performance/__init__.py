"""Performance measures: channel ROI, staff performance and campaign results (docs/analytics-performance.md)."""
