"""structlog, configured once: one JSON line per event on stdout, context from contextvars first."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO, cast

import structlog

from jobline.redaction import redact_log_event

_configured = False


class _Stdout:
    """`sys.stdout` as it is when a line is written, not when logging was configured
    (a runner or a test may redirect it after import)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def configure(level: str = "INFO") -> None:
    """Configure structlog for JSON output; safe to call many times (only the first call acts)."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_log_event,  # no credentials, payloads or results in any line
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _Stdout())),
        cache_logger_on_first_use=True,
    )
    _configured = True


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
