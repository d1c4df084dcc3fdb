"""Shared helpers with no domain rules: clock, ids, phone numbers, pagination, i18n, errors."""
