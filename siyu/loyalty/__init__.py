"""Loyalty (留存): tiers, the points ledger, tasks, the rewards mall and the member's H5 center."""
