"""structlog, configured once: one JSON line per event on stdout, context from contextvars first.

For a person at a terminal (`make run`) the lines are rendered by structlog's `ConsoleRenderer`
instead, coloured; `JOBLINE_LOG_FORMAT` (`json`, `console`, `auto`) forces either, and in Lambda
they are always JSON (see `choose_format`)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, TextIO, cast

import structlog

from jobline.redaction import Redaction, redact_log_event, use_for_logs

_configured = False

LogFormat = Literal["json", "console"]
"""How lines are rendered: one JSON object each, or structlog's human-readable console lines."""

_format: LogFormat = "json"


class _Stdout:
    """`sys.stdout` as it is when a line is written, not when logging was configured
    (a runner or a test may redirect it after import)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def choose_format(setting: str, *, is_terminal: bool, in_lambda: bool) -> LogFormat:
    """The format for `setting` (`json`, `console` or `auto`): in Lambda always JSON (CloudWatch
    and its queries read JSON; a stray setting must not change that); else `auto` is console on a
    terminal and JSON otherwise (a pipe, a file, a log collector), and the others force theirs."""
    if in_lambda:
        return "json"
    if setting == "console":
        return "console"
    if setting == "json":
        return "json"
    return "console" if is_terminal else "json"


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except ValueError:  # closed
        return False


def _configured_format() -> LogFormat:
    """The format the environment asks for. `jobline.config` is imported here, not at the top: it
    brings pydantic-settings, which a function imports anyway before it configures logging, but
    which `import jobline.logging` on its own need not pay for."""
    from jobline.config import log_settings

    settings = log_settings()
    return choose_format(
        settings.log_format,
        is_terminal=_stdout_is_terminal(),
        in_lambda=settings.in_lambda,
    )


def processors_for(log_format: LogFormat, *, colors: bool = False) -> list[Any]:
    """The processor chain of a format: contextvars first, level, timestamp, renderer last."""
    if log_format == "console":
        return [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            redact_log_event,  # no credentials, payloads or results in any line
            structlog.dev.ConsoleRenderer(colors=colors),
        ]
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_log_event,  # no credentials, payloads or results in any line
        structlog.processors.JSONRenderer(),
    ]


def configure(level: str | None = None, log_format: LogFormat | None = None) -> None:
    """Configure structlog; safe to call many times (only the first call acts).

    None (the defaults) takes each from the environment: `JOBLINE_LOG_LEVEL`, and the format from
    `JOBLINE_LOG_FORMAT`, whether stdout is a terminal, whether this is Lambda (`choose_format`)."""
    global _configured, _format
    if _configured:
        return
    from jobline.config import log_settings

    settings = log_settings()
    chosen = log_format or _configured_format()
    level = level or settings.log_level
    use_for_logs(Redaction.of(settings.redact_headers))
    structlog.configure(
        processors=processors_for(chosen, colors=_stdout_is_terminal()),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _Stdout())),
        cache_logger_on_first_use=True,
    )
    _format = chosen
    _configured = True


def current_format() -> LogFormat:
    """The format `configure` chose (JSON before it is called)."""
    return _format


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry the module name as `logger`."""
    return structlog.get_logger(logger_name=name)


def bind_invocation(request_id: str | None, function_name: str | None) -> None:
    """Start a fresh log context for one Lambda invocation."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        aws_request_id=request_id, function_name=function_name
    )


def bind(**values: Any) -> None:
    """Add keys to the current log context (per record, per job)."""
    structlog.contextvars.bind_contextvars(**values)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Add keys to the log context for a block; afterwards they are as they were before."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
