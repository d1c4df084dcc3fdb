"""The integration page: corp configuration, connection test, events, status."""
