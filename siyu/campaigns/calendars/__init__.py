"""Calendars: group SOP posts, moments per staff persona, and the script library (话术)."""
