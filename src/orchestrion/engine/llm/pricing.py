"""Prices in USD per million tokens, and the cost of a call.

``ORCHESTRION_LLM__PRICING`` entries replace the built-in ones model by model. A model
without an exact entry takes the longest entry it starts with (``gpt-4o-2024-08-06``
is priced as ``gpt-4o``); a model with none costs 0 and is reported as unpriced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens."""

    input: float
    output: float


#: List prices when this table was written; override them in settings when they change.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "claude-opus-4": Price(15.00, 75.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-3-haiku": Price(0.25, 1.25),
    "amazon.nova-micro": Price(0.035, 0.14),
    "amazon.nova-lite": Price(0.06, 0.24),
    "amazon.nova-pro": Price(0.80, 3.20),
}
#: Bedrock model ids start with an inference-profile region (``us.``, ``eu.``, ``global.``)
#: and a vendor (``anthropic.``): stripped, one at a time, to find the model's own price.
_ID_PREFIX = re.compile(r"^[a-z]+\.")


class PriceTable:
    """Built-in prices overlaid with configured ones."""

    def __init__(self, overrides: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.prices = dict(DEFAULT_PRICES)
        for model, price in (overrides or {}).items():
            self.prices[model] = Price(float(price["input"]), float(price["output"]))

    def price(self, model: str) -> Price | None:
        """The price of ``model``: exact, else the longest matching prefix, else None.

        A Bedrock id (``us.anthropic.claude-3-5-haiku-20241022-v1:0``) is also tried
        without its leading ``region.`` and ``vendor.`` words.
        """
        for _ in range(3):
            found = self.prices.get(model)
            if found is not None:
                return found
            matches = [name for name in self.prices if model.startswith(name)]
            if matches:
                return self.prices[max(matches, key=len)]
            stripped = _ID_PREFIX.sub("", model, count=1)
            if stripped == model:
                return None
            model = stripped
        return None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD for these tokens (0 for an unpriced model), rounded to 1e-9."""
        price = self.price(model)
        if price is None:
            return 0.0
        usd = (input_tokens * price.input + output_tokens * price.output) / 1_000_000
        return round(usd, 9)
