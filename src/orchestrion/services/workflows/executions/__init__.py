"""Executions: starting, reading, watching and steering them, and their event log."""
