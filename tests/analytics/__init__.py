"""Tests of siyu.analytics, one folder per area."""
