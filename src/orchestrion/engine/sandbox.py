"""The sandbox expressions run in: Jinja2's immutable sandbox plus bounds on work.

Definitions come from tenants. Jinja's sandbox already refuses Python internals
(``__class__``, ``__globals__``...) and mutation; on top of it:

- only ``{{ }}`` is special (``{% %}`` and ``{# #}`` are plain text), so an expression
  cannot loop, assign or define macros;
- the only globals are ``range`` (capped by Jinja) and ``dict``;
- ``*``, ``**``, ``%``, ``str.format``, ``join`` and ``replace`` refuse results that would
  grow past ``MAX_SIZE`` characters or items, powers are capped, and only an allow-list of
  methods may be called;
- a missing name or attribute fails at once (:class:`Missing`), never renders as empty.
"""

from __future__ import annotations

import itertools
import json
import re
import string
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NoReturn

import jinja2
from jinja2 import filters as jinja_filters
from jinja2 import nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

MAX_SIZE: Final = 100_000
MAX_EXPONENT: Final = 1000
MAX_INT_BITS: Final = 100_000

# Methods an expression may call; everything else on built-in values is refused, which
# keeps out amplifiers such as ``str.translate`` or ``int.to_bytes`` without naming them.
# A word list reads better here than forty quoted lines.
_SAFE_METHODS: Final = frozenset(
    "capitalize casefold count endswith find get index isalnum isalpha isdecimal isdigit "  # noqa: SIM905
    "islower isnumeric isspace istitle isupper items join keys lower lstrip partition "
    "removeprefix removesuffix replace rfind rindex rpartition rsplit rstrip split "
    "splitlines startswith strip swapcase title upper values".split()
)
# Layout filters whose arguments multiply output size, and ``random``, whose answer would
# change when a condition is evaluated again on retry or resume.
_DROPPED_FILTERS: Final = (
    "batch", "center", "indent", "random", "slice", "tojson", "urlize", "wordwrap", "xmlattr"
)  # fmt: skip
_PRINTF_SPEC: Final = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class Missing(UndefinedError):
    """A missing name, attribute or item; keeps what was looked up so callers can say where."""

    def __init__(self, message: str, obj: Any, name: Any) -> None:
        super().__init__(message)
        self.obj = obj
        self.name = name


class _StrictUndefined(jinja2.StrictUndefined):
    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_exception is not UndefinedError:  # the sandbox's SecurityError
            super()._fail_with_undefined_error()
        raise Missing(self._undefined_message, self._undefined_obj, self._undefined_name)


# Jinja binds the operators (__str__, __add__...) to the base class's function itself,
# so an override alone would only cover attribute access.
for _cls in (jinja2.Undefined, jinja2.StrictUndefined):
    for _name, _attr in vars(_cls).items():
        if _attr is jinja2.Undefined._fail_with_undefined_error and _name.startswith("__"):
            setattr(_StrictUndefined, _name, _StrictUndefined._fail_with_undefined_error)


def _size(value: Any, limit: int = MAX_SIZE) -> int:
    """Characters plus items a value stands for, counted no further than just past limit."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, Mapping):
            total += len(item)
            stack.extend(itertools.chain.from_iterable(item.items()))
        elif isinstance(item, list | tuple):
            total += len(item)
            stack.extend(item)
        else:
            total += 1
    return total


def _refuse_growth(new: int, old: int, what: str) -> None:
    # Growth is what is bounded: passing a large step output along is fine.
    if new > MAX_SIZE and new > old:
        raise SecurityError(f"{what} would produce more than {MAX_SIZE:,} characters or items")


def _check_printf(fmt: str) -> None:
    extra = 0
    for match in _PRINTF_SPEC.finditer(fmt):
        for part in match.groups():
            if part == "*":
                raise SecurityError("'*' widths are not allowed in % formatting")
            extra += int(part or 0)
    _refuse_growth(len(fmt) + extra, len(fmt), "% formatting")


def _check_format_string(fmt: str) -> None:
    extra = 0
    for _text, _field, spec, _conversion in string.Formatter().parse(fmt):
        if spec and "{" in spec:
            raise SecurityError("nested fields in format specifications are not allowed")
        extra += sum(int(digits) for digits in re.findall(r"\d+", spec or ""))
    _refuse_growth(len(fmt) + extra, len(fmt), "str.format")


def _check_replace(text: str, old: str, new: str, count: int | None) -> None:
    hits = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    _refuse_growth(len(text) + hits * (len(new) - len(old)), len(text), "replace")


def _check_join(separator: str, items: list[Any]) -> None:
    old = _size(items)
    _refuse_growth(old + len(separator) * max(len(items) - 1, 0), old, "join")


@jinja2.pass_eval_context
def _replace_filter(
    eval_ctx: nodes.EvalContext, s: Any, old: Any, new: Any, count: int | None = None
) -> str:
    _check_replace(str(s), str(old), str(new), count)
    return jinja_filters.do_replace(eval_ctx, s, old, new, count)


@jinja2.pass_eval_context
def _join_filter(
    eval_ctx: nodes.EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None
) -> str:
    items = list(value)
    _check_join(str(d), items)
    return jinja_filters.sync_do_join(eval_ctx, items, d, attribute)


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_printf(str(value))
    return jinja_filters.do_format(value, *args, **kwargs)


def _json_filter(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class ExpressionEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus the work bounds described in the module docstring.

    Build it with :func:`create_environment`, which also sets delimiters, globals and filters.
    """

    intercepted_binops = frozenset({"*", "**", "%"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Keys before methods on JSON objects: ``inputs.items`` is the key, not ``dict.items``."""
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply ``*``, ``**`` or ``%`` unless the result would be too large."""
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                    old = _size(seq)
                    _refuse_growth(old * times, old, "repetition")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if right > MAX_EXPONENT or abs(left).bit_length() * right > MAX_INT_BITS:
                limits = f"exponent up to {MAX_EXPONENT}, result up to {MAX_INT_BITS:,} bits"
                raise SecurityError(f"the power is too large ({limits})")
        elif operator == "%" and isinstance(left, str):
            _check_printf(left)
        try:
            return super().call_binop(context, operator, left, right)
        except OverflowError:
            raise OverflowError(f"the result of {operator} is too large") from None

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call obj if it is an allowed method, and a bounded one when it can grow text."""
        owner = getattr(obj, "__self__", None)
        if isinstance(obj, types.BuiltinMethodType | types.MethodType) and not isinstance(
            owner, types.ModuleType | None
        ):
            if obj.__name__ not in _SAFE_METHODS:
                kind = type(owner).__name__
                raise SecurityError(f"method {obj.__name__!r} of {kind!r} is not allowed")
            if isinstance(owner, str) and obj.__name__ == "join" and args:
                args = (list(args[0]), *args[1:])
                _check_join(owner, args[0])
            elif isinstance(owner, str) and obj.__name__ == "replace" and len(args) >= 2:
                count = args[2] if len(args) > 2 else kwargs.get("count")
                _check_replace(owner, str(args[0]), str(args[1]), count)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed ``str.format``, refused when its widths ask for too much."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_string(value.__self__)
        return wrapped


def create_environment() -> ExpressionEnvironment:
    """A new environment for workflow expressions (see the module docstring)."""
    # Delimiters nobody types make {% %} and {# #} plain text: only {{ }} is special.
    env = ExpressionEnvironment(
        undefined=_StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        block_start_string="\x00{%",
        block_end_string="%}\x00",
        comment_start_string="\x00{#",
        comment_end_string="#}\x00",
    )
    env.globals = {"range": safe_range, "dict": dict}
    for name in _DROPPED_FILTERS:
        env.filters.pop(name, None)
    env.filters.update(
        replace=_replace_filter, join=_join_filter, format=_format_filter, json=_json_filter
    )
    return env
