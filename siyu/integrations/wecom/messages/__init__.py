"""WeCom mass-message tasks (群发) and moments (朋友圈): results, reminders, stats."""
