"""Community: lottery."""
