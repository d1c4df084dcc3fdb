"""WeCom customer groups (客户群): chat events and group sync helpers."""
