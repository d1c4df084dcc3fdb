"""Workspaces (one per brand) and the scoping that keeps them apart."""
