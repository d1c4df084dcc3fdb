"""Community: koc."""
