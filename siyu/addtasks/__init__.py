"""Add-by-phone tasks (主动添加): phone lists split into daily per-staff lists, matched on add."""
