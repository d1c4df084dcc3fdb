"""The HTTP edge: app plumbing, console templates and static assets."""
