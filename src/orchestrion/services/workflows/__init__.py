"""The workflows service: definitions and their versions (executions come with the engine)."""
