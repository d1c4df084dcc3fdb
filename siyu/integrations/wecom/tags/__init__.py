"""Two-way sync of enterprise tags (企业标签) and customer tags with WeCom."""
