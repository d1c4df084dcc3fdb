"""Community: challenges."""
