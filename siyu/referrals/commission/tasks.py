"""Listeners and jobs of distribution commission."""

from __future__ import annotations
