"""Background jobs: Dramatiq actors over rows in the `jobs` table."""
