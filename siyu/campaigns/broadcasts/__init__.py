"""Broadcasts (群发): one message to a segment, planned in batches and sent under the delivery policy."""
