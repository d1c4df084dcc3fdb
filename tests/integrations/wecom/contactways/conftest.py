"""Contact-way tests: the module-scoped fake WeCom server and per-test cache reset come from the parent conftest."""
