"""LLM calls for ``llm`` and ``agent`` steps: provider clients, prices, token counts.

Provider clients speak their wire protocol over httpx streaming (OpenAI-compatible chat
completions, Anthropic Messages); :mod:`.backend` is what the platform lends them
(tenant providers, budgets, token push, tools).
"""
