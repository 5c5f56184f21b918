"""Message templates: Jinja in its sandbox, with bounds on time and size.

``jinja2.sandbox.SandboxedEnvironment`` keeps a template from reaching Python's
internals (no ``__class__``, no unsafe callables). A sandbox alone does not bound the
work a template does, so on top of it:

- ``range`` is a budgeted generator: every step of every loop over it counts, and a
  render past :data:`MAX_STEPS` stops;
- ``*`` and ``**`` are intercepted (which also keeps Jinja from folding them at compile
  time): no string or list repeated past the output cap, no huge powers;
- the output is generated chunk by chunk and cut off past ``max_chars``.

Variables a template uses but ``data`` lacks render empty, as Jinja does by default.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

#: Loop steps one render may take over ``range`` (nested loops multiply quickly).
MAX_STEPS = 100_000
_MAX_EXPONENT = 64
_MAX_BITS = 100_000


class RenderError(Exception):
    """A template that does not render (syntax, sandbox, or a bound reached)."""


class _Budget:
    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise SecurityError(f"the template loops more than {MAX_STEPS} times")


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, max_chars: int) -> None:
        super().__init__(autoescape=False)
        self.max_chars = max_chars

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """``*`` and ``**`` within bounds; anything else as Python does it."""
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponents above {_MAX_EXPONENT} are not allowed")
            if isinstance(left, int) and left.bit_length() * abs(right) > _MAX_BITS:
                raise SecurityError("the power would be too large a number")
            return left**right
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                repeats = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if repeats and len(seq) * count > self.max_chars:
                    raise SecurityError("the repetition would exceed the output limit")
            return left * right
        return super().call_binop(context, operator, left, right)


def _budgeted_range(budget: _Budget) -> Any:
    def bounded(*args: int) -> Iterator[int]:
        for value in range(*args):
            budget.spend()
            yield value

    return bounded


def check_source(source: str, *, max_chars: int) -> None:
    """Raise :class:`RenderError` unless ``source`` parses as a template."""
    try:
        _Sandbox(max_chars).parse(source)
    except TemplateError as exc:
        raise RenderError(_describe(exc)) from None


def render(source: str, data: Mapping[str, Any], *, max_chars: int) -> str:
    """``source`` rendered with ``data`` (raises :class:`RenderError`)."""
    environment = _Sandbox(max_chars)
    budget = _Budget(MAX_STEPS)
    environment.globals["range"] = _budgeted_range(budget)
    try:
        template = environment.from_string(source)
        size = 0
        parts: list[str] = []
        for chunk in template.generate(**dict(data)):
            size += len(chunk)
            if size > max_chars:
                raise RenderError(f"the template renders more than {max_chars} characters")
            parts.append(chunk)
    except RenderError:
        raise
    except (TemplateError, ArithmeticError, TypeError, ValueError) as exc:
        raise RenderError(_describe(exc)) from None
    return "".join(parts)


def _describe(exc: Exception) -> str:
    line = getattr(exc, "lineno", None)
    where = f" (line {line})" if line else ""
    return f"{type(exc).__name__}{where}: {exc}"
