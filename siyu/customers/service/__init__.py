"""The rules of the customer pool, split by sub-topic; import from the sub-modules."""
