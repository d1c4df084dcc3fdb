"""Funnels (漏斗): steps with windows, exclusions and breakdowns; saved funnels; drop-off segments."""
