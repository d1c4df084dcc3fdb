"""Tests of channel ROI, staff performance and campaign results."""
