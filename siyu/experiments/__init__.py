"""A/B experiments: deterministic assignment, exposures, results with statistics."""
