"""The sandbox expressions run in: Jinja2's immutable sandbox plus bounds on work.

Definitions come from tenants. Jinja's sandbox already refuses Python internals
(``__class__``, ``__globals__``...) and mutation; on top of it:

- only ``{{ }}`` is special (``{% %}`` and ``{# #}`` are plain text), so an expression
  cannot loop, assign or define macros;
- the only globals are ``range`` (capped by Jinja) and ``dict``;
- every value an expression builds is metered: operators (``+``, ``~``, ``*``, ``%``),
  list and object literals, calls and filters refuse a result that would grow past
  ``max_size`` characters plus items (:func:`configure`, from the setting
  ``ORCHESTRION_LIMITS__EXPRESSION_MAX_SIZE``)
  unless it is no larger than what went in; ``str.format``, ``join`` and ``replace`` are
  refused before they run, powers are capped, and only an allow-list of methods may be called;
- values that are not JSON (functions, types, modules, other objects) are refused by type name
  wherever they would be turned into text or returned, so no ``<... at 0x...>`` repr leaks;
- a missing name or attribute fails at once (:class:`Missing`), never renders as empty.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import re
import string
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, NoReturn

import jinja2
from jinja2 import filters as jinja_filters
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

DEFAULT_MAX_SIZE: Final = 1_000_000
MAX_SIZE = DEFAULT_MAX_SIZE  # set by configure(); read at evaluation time
_SETTING: Final = "limits.expression_max_size"
# Glue a literal may add around a value larger than the limit ({"data": big_output}).
_LITERAL_SLACK: Final = 256
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
# Filters that turn their input into text: their input is checked all the way down.
_STRINGIFYING: Final = frozenset(
    "capitalize center e escape forceescape format indent join json lower pprint replace "  # noqa: SIM905
    "safe string striptags title trim truncate upper urlencode urlize wordcount wordwrap".split()
)
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


def configure(*, max_size: int) -> None:
    """Set the largest value (characters plus items) an expression may build."""
    global MAX_SIZE
    if max_size < 1:
        raise ValueError("max_size must be positive")
    MAX_SIZE = max_size


class NotJson(SecurityError):
    """A value that is not JSON (a function, type, module or other object) met the output."""

    def __init__(self, value: Any) -> None:
        super().__init__(f"expression result of type {type(value).__name__!r} is not JSON")


_SCALARS: Final = (str, int, float, bool, type(None))


def check_json(value: Any) -> None:
    """Raise NotJson when value holds anything but JSON data (tuples count as lists)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _SCALARS):
            if isinstance(item, float) and not math.isfinite(item):
                raise SecurityError(f"expression result {item!r} is not a JSON number")
            continue
        if isinstance(item, Mapping) and not isinstance(item, type):
            stack.extend(itertools.chain.from_iterable(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            raise NotJson(item)


def _check_operand(value: Any, *, deep: bool = True) -> None:
    # Lazy sequences (range, map...) are fine as operands; they are checked when listed.
    # An undefined value is left to fail (or be defaulted) where it is used. A deep check
    # costs what str() of the value costs, so it is made only where the value becomes text.
    if isinstance(value, jinja2.Undefined):
        return
    if callable(value) or isinstance(value, types.ModuleType):
        raise NotJson(value)
    if deep and isinstance(value, Mapping | list | tuple):
        check_json(value)


# Sizes of large containers already measured during one evaluation (see metering()):
# the sandbox is immutable, so a value's size cannot change while an expression runs,
# and `[big]` written a hundred times then costs one walk of `big`, not a hundred.
_MEMO_FROM: Final = 10_000
_memo = threading.local()


@contextlib.contextmanager
def metering() -> Iterator[None]:
    """Scope of one evaluation: remembers the sizes of large containers until it ends."""
    outer = getattr(_memo, "sizes", None)
    _memo.sizes = {}
    try:
        yield
    finally:
        _memo.sizes = outer


def _size(value: Any, limit: int | None = None) -> int:
    """Characters plus items a value stands for, counted no further than just past limit."""
    limit = MAX_SIZE if limit is None else limit
    sizes: dict[int, tuple[Any, int]] | None = getattr(_memo, "sizes", None)
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif sizes is not None and id(item) in sizes:
            total += sizes[id(item)][1]
        elif isinstance(item, Mapping):
            total += len(item)
            stack.extend(itertools.chain.from_iterable(item.items()))
        elif isinstance(item, list | tuple):
            total += len(item)
            stack.extend(item)
        else:
            total += 1
    if sizes is not None and total >= _MEMO_FROM and isinstance(value, Mapping | list | tuple):
        sizes[id(value)] = (value, total)  # the value is kept, so its id stays its own
    return total


def _refuse_growth(new: int, old: int, what: str) -> None:
    # Growth is what is bounded: passing a large step output along is fine.
    if new > MAX_SIZE and new > old:
        raise SecurityError(
            f"{what} would produce more than {MAX_SIZE:,} characters or items "
            f"(the limit is {_SETTING})"
        )


def meter(result: Any, operands: Iterable[Any], what: str, slack: int = 0) -> Any:
    """Return result unless it is larger than the limit and than its largest operand.

    Raises SecurityError naming the limit and its setting.
    """
    new = _size(result)
    if new > MAX_SIZE:
        old = max((_size(operand) for operand in operands), default=0)
        _refuse_growth(new, old + slack, what)
    return result


def _metered_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so that its input is JSON-like and its result is metered."""

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja passes the same arguments
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = [
            a for a in args if not isinstance(a, Context | nodes.EvalContext | jinja2.Environment)
        ]
        values.extend(kwargs.values())
        for value in values:
            _check_operand(value, deep=name in _STRINGIFYING)
        return meter(func(*args, **kwargs), values, f"the {name!r} filter")

    return wrapper


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

    intercepted_binops = frozenset({"+", "*", "**", "%"})

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
            for value in right if isinstance(right, tuple) else (right,):
                _check_operand(value)
        try:
            result = super().call_binop(context, operator, left, right)
        except OverflowError:
            raise OverflowError(f"the result of {operator} is too large") from None
        if operator in ("+", "%"):
            meter(result, (left, right), f"{operator!r}")
        return result

    def meter_concat(self, values: tuple[Any, ...]) -> str:
        """The ``~`` operator: every piece turned into text, and the whole metered."""
        for value in values:
            _check_operand(value)
        pieces = [str(value) for value in values]
        text = "".join(pieces)
        meter(text, pieces, "'~'")
        return text

    def meter_literal(self, value: Any) -> Any:
        """A list, tuple or object literal, metered against its largest member."""
        if isinstance(value, Mapping):
            members: Iterable[Any] = itertools.chain.from_iterable(value.items())
        else:
            members = value
        return meter(value, list(members), "a literal", _LITERAL_SLACK)

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
        deep = getattr(obj, "__name__", None) in ("format", "format_map")
        for value in (*args, *kwargs.values()):
            _check_operand(value, deep=deep)
        result = super().call(context, obj, *args, **kwargs)
        return meter(result, (owner, *args, *kwargs.values()), "a call")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed ``str.format``, refused when its widths ask for too much."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_string(value.__self__)
        return wrapped


def _finalize(value: Any) -> Any:
    # Each ``{{ }}`` of a text template passes here before str(): refuse what is not JSON.
    if not isinstance(value, str):
        _check_operand(value)
    return value


class _MeteredCodeGenerator(CodeGenerator):
    """Compiles ``~`` and list/tuple/object literals through the environment's meters."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.meter_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _metered(
        self, visit: Callable[[Any, Any, Frame], None], node: nodes.Node, frame: Frame
    ) -> None:
        self.write("environment.meter_literal(")
        visit(self, node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._metered(CodeGenerator.visit_List, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # assignment targets stay plain
            CodeGenerator.visit_Tuple(self, node, frame)
        else:
            self._metered(CodeGenerator.visit_Tuple, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._metered(CodeGenerator.visit_Dict, node, frame)


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
        finalize=_finalize,
    )
    env.code_generator_class = _MeteredCodeGenerator
    env.globals = {"range": safe_range, "dict": dict}
    for name in _DROPPED_FILTERS:
        env.filters.pop(name, None)
    env.filters.update(
        replace=_replace_filter, join=_join_filter, format=_format_filter, json=_json_filter
    )
    env.filters = {name: _metered_filter(name, f) for name, f in env.filters.items()}
    return env
