"""LLM steps' side of the service: providers, budgets, usage, the platform backend, tokens."""
