"""Campaigns: broadcasts (群发), SOPs and journeys, calendars, and their results."""
