"""Listeners and background jobs of community koc."""

from __future__ import annotations
