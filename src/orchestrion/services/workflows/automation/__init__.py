"""Starting workflows without a person: cron schedules and signed webhook triggers."""
