"""Workflow definitions and their versions."""
