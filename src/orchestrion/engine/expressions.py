"""Workflow expressions: ``{{ ... }}`` strings in definitions.

A string that is exactly one ``{{ expr }}`` (whitespace around it allowed) evaluates to the
expression's own type: ``"{{ inputs.x * 2 }}"`` gives an ``int``. Any other string holding
expressions renders as text, each piece through ``str()``. Expressions see the context they
are given (``inputs``, ``steps``, ``item``, ``index``, ``env``, ``execution``, ``flags``) and
run in the bounded sandbox of :mod:`orchestrion.engine.sandbox`.

``flags`` is read by literal key only (``flags.beta``, ``flags['new-editor']``), so that
the flags a string reads are known before it runs (:attr:`Template.flags`): the runtime
evaluates those, and only those, before the expression does.
"""

from __future__ import annotations

import functools
import itertools
import re
import types
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, cast

import jinja2
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateSyntaxError

from orchestrion.engine.sandbox import (
    Missing,
    NotJson,
    check_json,
    configure,
    create_environment,
    meter,
    metering,
)

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "ExpressionError",
    "Template",
    "configure",
    "configure_expressions",
    "evaluate",
    "flag_references",
    "iter_expressions",
    "parse",
    "parse_expression",
    "references",
    "validate",
]

MAX_EXPRESSION_LENGTH: Final = 4096

Path = tuple[str | int, ...]
_ENV: Final = create_environment()
_PIECE: Final = re.compile(r"\{\{.*?\}\}", re.DOTALL)


class ExpressionError(ValueError):
    """An expression that does not parse, fails, or is refused while evaluating.

    ``str(exc)`` is a message for people; ``path`` locates the failing string inside the
    value given to :func:`evaluate` (empty otherwise).
    """

    def __init__(self, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _quote(source: str) -> str:
    return repr(source if len(source) <= 120 else source[:117] + "...")


def _find_path(target: Any, context: Mapping[str, Any]) -> str | None:
    """Where target sits in the context ("steps.fetch.output"), searched a few levels deep."""
    queue: deque[tuple[str, Any, int]] = deque((k, v, 0) for k, v in context.items())
    for _ in range(10_000):
        if not queue:
            break
        path, value, depth = queue.popleft()
        if value is target:
            return path
        if depth < 4 and isinstance(value, Mapping):
            for key, child in itertools.islice(value.items(), 1000):
                step = f".{key}" if str(key).isidentifier() else f"[{key!r}]"
                queue.append((path + step, child, depth + 1))
    return None


def _to_native(value: Any) -> Any:
    """JSON-like data out of what Jinja returns: no Undefined, Markup, tuples or generators.

    Anything else (a function, a type, a module, another object) is refused by its type's
    name, so no repr with a memory address reaches an output.
    """
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | int | float | None):
        check_json(value)  # refuses nan and infinities
        return value
    if callable(value) or isinstance(value, type | types.ModuleType | bytes | bytearray):
        raise NotJson(value)
    if isinstance(value, Mapping):
        return {_to_native(k): _to_native(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_to_native(item) for item in value]
    raise NotJson(value)


def _step_references(ast: nodes.Node) -> frozenset[str]:
    found: set[str] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "steps"):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            found.update([node.arg.value] if isinstance(node.arg.value, str) else [])
    return frozenset(found)


def _flag_references(ast: nodes.Node) -> tuple[frozenset[str], str | None]:
    """The keys read as ``flags.<key>``/``flags['<key>']``, and what reads ``flags``
    otherwise (a computed key, the whole mapping), if anything."""
    keys: set[str] = set()
    read: set[int] = set()
    misuse: str | None = None
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "flags"):
            continue
        read.add(id(target))
        if isinstance(node, nodes.Getattr):
            keys.add(node.attr)
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                keys.add(node.arg.value)
            else:
                misuse = "flags must be read with a literal key: flags.<key> or flags['<key>']"
    for name in ast.find_all(nodes.Name):
        if name.name == "flags" and id(name) not in read:
            misuse = "flags must be read one at a time: flags.<key> or flags['<key>']"
    return frozenset(keys), misuse


class Template:
    """A compiled string: plain text, one typed expression, or text with expressions."""

    __slots__ = ("_native", "_text", "flag_misuse", "flags", "is_single", "references", "source")

    def __init__(self, source: str, ast: nodes.Template | None = None) -> None:
        self.source = source
        self._native: TemplateExpression | None = None
        self._text: jinja2.Template | None = None
        #: The step ids this string reads as ``steps.<id>`` (best effort).
        self.references = _step_references(ast) if ast is not None else frozenset[str]()
        #: The flag keys this string reads (``flags.<key>``), and why it reads ``flags``
        #: in a way that cannot be known beforehand (None: it does not).
        self.flags, self.flag_misuse = (
            _flag_references(ast) if ast is not None else (frozenset[str](), None)
        )
        if ast is None:
            self.is_single = False
            return
        parts = [part for output in ast.body for part in output.iter_child_nodes()]
        exprs = [part for part in parts if not isinstance(part, nodes.TemplateData)]
        blank = all(p.data.strip() == "" for p in parts if isinstance(p, nodes.TemplateData))
        #: Whether the string is exactly one ``{{ expr }}`` and so keeps its type.
        self.is_single = len(exprs) == 1 and blank
        if self.is_single:
            expr = cast(nodes.Expr, exprs[0])
            body: list[nodes.Node] = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
            compiled = _ENV.from_string(nodes.Template(body, lineno=1))
            self._native = TemplateExpression(compiled, undefined_to_none=False)
        else:
            self._text = _ENV.from_string(ast)

    @property
    def is_expression(self) -> bool:
        """Whether the string contains any ``{{`` (otherwise it renders as itself)."""
        return self._native is not None or self._text is not None

    def _evaluate(self, scope: dict[str, Any]) -> Any:
        if self._native is not None:
            return _to_native(self._native(scope))
        if self._text is not None:
            pieces = list(self._text.generate(scope))
            return meter("".join(pieces), pieces, "the text")
        return self.source

    def render(self, context: Mapping[str, Any]) -> Any:
        """Evaluate against context (``inputs``, ``steps``...); raises ExpressionError."""
        scope = dict(context)
        try:
            with metering():
                return self._evaluate(scope)
        except Missing as exc:
            # Only containers: small ints and strings are shared objects, found anywhere.
            found = isinstance(exc.obj, Mapping | list)
            where = _find_path(exc.obj, scope) if found else None
            has = "attribute" if isinstance(exc.name, str) else "item"
            reason = f"{where!r} has no {has} {exc.name!r}" if where else str(exc)
            raise ExpressionError(f"{reason} in {_quote(self.source)}") from exc
        except Exception as exc:  # tenant-written code may raise anything; report, never crash
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise ExpressionError(f"{reason} in {_quote(self.source)}") from exc


@functools.lru_cache(maxsize=4096)
def parse(value: str) -> Template:
    """Compile a string once; raises ExpressionError naming the expression on bad syntax."""
    if "{{" not in value:
        return Template(value)
    if any(len(piece) > MAX_EXPRESSION_LENGTH for piece in _PIECE.findall(value)):
        raise ExpressionError(
            f"expression longer than {MAX_EXPRESSION_LENGTH} characters in {_quote(value)}"
        )
    try:
        ast = _ENV.parse(value)
        if not all(isinstance(node, nodes.Output) for node in ast.body):
            raise ExpressionError(f"only {{{{ }}}} expressions are allowed in {_quote(value)}")
        return Template(value, ast)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"invalid expression {_quote(value)}: {exc.message}") from None
    except RecursionError:
        raise ExpressionError(f"expression nested too deeply in {_quote(value)}") from None


def parse_expression(value: str) -> Template:
    """Compile a condition or list expression: bare (``x > 1``) or wrapped (``{{ x > 1 }}``).

    Used for ``when`` and ``for_each``, whose value is one expression, never text.
    """
    template = parse(value if "{{" in value else "{{ " + value + " }}")
    if not template.is_single:
        raise ExpressionError(f"{_quote(value)} must be a single expression")
    return template


def iter_expressions(obj: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Yield (path, string) for every string holding ``{{`` inside a JSON-like value."""
    if isinstance(obj, str):
        if "{{" in obj:
            yield path, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from iter_expressions(value, (*path, key))
    elif isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            yield from iter_expressions(value, (*path, index))


def validate(obj: Any) -> list[tuple[Path, str]]:
    """(path, message) for each string in a JSON-like value whose expressions do not parse."""
    errors: list[tuple[Path, str]] = []
    for path, text in iter_expressions(obj):
        try:
            parse(text)
        except ExpressionError as exc:
            errors.append((path, exc.message))
    return errors


def evaluate(obj: Any, context: Mapping[str, Any]) -> Any:
    """Deep-render a JSON-like value: strings are evaluated, dict keys are left as they are.

    A failure raises ExpressionError whose ``path`` locates the string inside obj.
    """
    return _evaluate(obj, context, ())


def _evaluate(obj: Any, context: Mapping[str, Any], path: Path) -> Any:
    if isinstance(obj, str):
        if "{{" not in obj:
            return obj
        try:
            return parse(obj).render(context)
        except ExpressionError as exc:
            exc.path = path
            raise
    if isinstance(obj, Mapping):
        return {key: _evaluate(value, context, (*path, key)) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_evaluate(value, context, (*path, i)) for i, value in enumerate(obj)]
    return obj


def configure_expressions(*, max_size: int) -> None:
    """Set the bounds expressions run within, from ``settings.limits`` at start-up.

    ``max_size``: the largest value (characters plus items) an expression may build.
    """
    configure(max_size=max_size)


#: Keys of a step's ``with`` whose strings are conditions without braces (a ``switch``
#: case's ``when``, a ``loop``'s ``until``).
_BARE_CONDITIONS: Final = frozenset({"when", "until"})


def flag_references(obj: Any, *, bare: bool = False) -> Iterator[tuple[Path, Template]]:
    """(path, template) of every string in a JSON-like value that reads ``flags``.

    ``bare``: obj is one condition without braces (``when``, ``for_each``). Inside it,
    strings under ``when``/``until`` keys are read as such conditions too. A string that
    does not parse is skipped (:func:`validate` reports it).
    """
    if bare and isinstance(obj, str):
        candidates: Iterator[tuple[Path, str, bool]] = iter([((), obj, True)])
    else:
        candidates = _candidates(obj, ())
    for path, text, is_bare in candidates:
        if "flags" not in text:
            continue
        try:
            template = parse_expression(text) if is_bare else parse(text)
        except ExpressionError:
            continue
        if template.flags or template.flag_misuse:
            yield path, template


def _candidates(obj: Any, path: Path) -> Iterator[tuple[Path, str, bool]]:
    if isinstance(obj, str):
        if "{{" in obj:
            yield path, obj, False
        elif path and path[-1] in _BARE_CONDITIONS:
            yield path, obj, True
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _candidates(value, (*path, key))
    elif isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            yield from _candidates(value, (*path, index))


def references(value: str) -> set[str]:
    """Best effort: the step ids a string reads as ``steps.<id>`` or ``steps['<id>']``."""
    try:
        return set(parse(value).references)
    except ExpressionError:
        return set()
