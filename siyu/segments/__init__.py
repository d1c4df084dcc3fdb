"""Segments: the definition language, its compiler, and saved segments."""

from siyu.segments import definition as definition  # first, so the condition modules it registers see it whole
