"""Logging: one format for structlog's loggers and the standard library's (uvicorn,
SQLAlchemy, Alembic, the platform's own), chosen once per process.

- ``json``: one JSON object per line (``timestamp`` in UTC, ``level``, ``logger``,
  ``event``, the request id and any extras), for a log pipeline.
- ``console``: one line a person reads at a terminal, like uvicorn's or Prefect's:
  local time, level, logger, message, then ``key=value`` extras; coloured only on a
  terminal (and not with ``NO_COLOR`` set or ``TERM=dumb``).
- ``auto``: ``console`` when the stream (stderr) is a terminal, else ``json`` - what a
  person at a terminal and a container's log collector each want, with no setting.

Extras are the request id bound by the request-id middleware, the ``trace_id`` and
``span_id`` of the current span when tracing is on, and whatever a caller passes, to a
structlog logger as keywords or to a standard one as ``extra={...}``.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from typing import Any, Literal, TextIO

import structlog
from structlog.dev import Column, KeyValueColumnFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

from orchestrion.kernel.observability.tracing import add_trace_ids

LogFormat = Literal["auto", "console", "json"]

# Widths that keep the message column aligned for the usual logger names.
_LEVEL_WIDTH = 8
_LOGGER_WIDTH = 20
_RESET = "\033[0m"
_DIM = "\033[2m"
_CYAN = "\033[36m"
_LEVEL_COLOURS = {
    "debug": "\033[34m",
    "info": "\033[32m",
    "warning": "\033[33m",
    "error": "\033[31m",
    "critical": "\033[1;31m",
}
# Loggers that say at INFO what is only worth reading when debugging (Alembic: a line
# per plugin it loads, on every start); quiet unless the level is DEBUG.
_CHATTY = ("alembic.runtime.plugins",)
# Record attributes ExtraAdder would copy that are not the caller's extras.
_NOT_EXTRAS = ("color_message",)  # uvicorn's ANSI copy of its own message


def resolve_format(format: LogFormat, stream: TextIO) -> Literal["console", "json"]:
    """``console`` or ``json``: ``auto`` picks console when ``stream`` is a terminal."""
    if format != "auto":
        return format
    return "console" if _is_terminal(stream) else "json"


def configure_logging(
    *, level: str = "INFO", format: LogFormat = "auto", stream: TextIO | None = None
) -> Literal["console", "json"]:
    """Route every logger through structlog to ``stream`` (stderr) in ``format``.

    Returns the format chosen (``auto`` resolved). uvicorn's loggers lose their own
    handlers, so its start-up and error lines come out in the same format.
    """
    out = stream if stream is not None else sys.stderr
    chosen = resolve_format(format, out)
    console = chosen == "console"
    colours = console and _is_terminal(out) and _colours_allowed()
    timestamp: Processor = (
        _local_time if console else structlog.processors.TimeStamper(fmt="iso", utc=True)
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamp,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # The console renderer formats tracebacks itself; JSON carries them as one string.
    final: list[Processor] = (
        [_console_renderer(colours)]
        if console
        else [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_not_extras],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own handlers; let its records reach ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # The gateway writes one access line per request itself, with the request id.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
        )
    return chosen


def get_logger(name: str) -> Any:
    """A structlog logger bound to ``name``."""
    return structlog.get_logger(name)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _colours_allowed() -> bool:
    # https://no-color.org: present and not empty turns colour off.
    return not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _local_time(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """``HH:MM:SS.mmm`` in local time, of the record when there is one."""
    record = event_dict.get("_record")
    moment = (
        datetime.fromtimestamp(record.created).astimezone()
        if record is not None
        else datetime.now().astimezone()
    )
    event_dict["timestamp"] = moment.strftime("%H:%M:%S.%f")[:-3]
    return event_dict


def _drop_not_extras(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key in _NOT_EXTRAS:
        event_dict.pop(key, None)
    return event_dict


class _Level:
    """``INFO    ``: upper case, padded, coloured by severity."""

    def __init__(self, colours: bool) -> None:
        self.colours = colours

    def __call__(self, key: str, value: object) -> str:
        name = str(value)
        padded = name.upper().ljust(_LEVEL_WIDTH)
        if not self.colours:
            return padded
        return f"{_LEVEL_COLOURS.get(name, '')}{padded}{_RESET}"


def _value(value: object) -> str:
    # Quoted only when needed to read the line back unambiguously.
    if isinstance(value, str):
        return repr(value) if not value or set(value) & set(" \t\r\n=\"'") else value
    return repr(value)


def _console_renderer(colours: bool) -> structlog.dev.ConsoleRenderer:
    dim, cyan, reset = (_DIM, _CYAN, _RESET) if colours else ("", "", "")
    text = str
    columns = [
        Column("timestamp", KeyValueColumnFormatter(None, dim, reset, text)),
        Column("level", _Level(colours)),
        Column("logger", KeyValueColumnFormatter(None, cyan, reset, text, _LOGGER_WIDTH)),
        Column("event", KeyValueColumnFormatter(None, "", reset, text)),
        # Everything else, as key=value, in key order.
        Column("", KeyValueColumnFormatter(dim, "", reset, _value)),
    ]
    exceptions = (
        # Locals stay out: a traceback on screen must not print secrets.
        structlog.dev.RichTracebackFormatter(show_locals=False)
        if colours
        else structlog.dev.plain_traceback
    )
    return structlog.dev.ConsoleRenderer(columns=columns, exception_formatter=exceptions)
