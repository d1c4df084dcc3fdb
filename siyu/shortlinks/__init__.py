"""Short links (短链): tracked redirects per campaign and per recipient."""
