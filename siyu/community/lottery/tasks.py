"""Listeners and background jobs of community lottery."""

from __future__ import annotations
