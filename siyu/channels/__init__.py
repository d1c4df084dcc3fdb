"""Acquisition channels (渠道): costs, attribution and metrics (adds, CAC, deletion rate, ROI)."""
