"""Community: resources."""
