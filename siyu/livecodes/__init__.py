"""Live codes (渠道活码 / 群活码 / 门店活码): routing scans to staff and groups, adds, welcome messages."""
