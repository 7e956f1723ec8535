"""structlog, configured once: one JSON line per event on stdout, context from contextvars first.

For a person at a terminal (`make run`) the lines are rendered by structlog's `ConsoleRenderer`
instead, coloured; `JOBLINE_LOG_FORMAT` (`json`, `console`, `auto`) forces either, and in Lambda
they are always JSON (see `choose_format`).

Every record a function writes is one redacted JSON object: the standard library's loggers (Mangum,
botocore, a handler's own `logging` calls, an unexpected exception's traceback) go through the
same processors as structlog's own lines (`_route_standard_logging`), so no multi-line text record
and nothing past the redaction reaches the log group. Every line costs money (CloudWatch Logs
bills ingestion per GB): what an operator needs is logged at INFO, the rest at DEBUG
(docs/benchmarks.md, "Logs in the bill")."""

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
_in_lambda = False


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


def _one_job_type(logger: Any, method_name: str, event: Any) -> Any:
    """A line that carries a metrics document names the job type once, as its `JobType`
    dimension (the log context's `job_type` would say it twice)."""
    if "JobType" in event and "_aws" in event:
        event.pop("job_type", None)
    return event


def _logger_on_problems(logger: Any, method_name: str, event: Any) -> Any:
    """An INFO line names its event (`job.succeeded`), which says where it comes from; a warning,
    an error or a DEBUG line also names its logger (every byte of a line is billed)."""
    if event.get("level") == "info":
        event.pop("logger_name", None)
    return event


def _pre_chain(log_format: LogFormat) -> list[Any]:
    """What every line goes through before it is rendered, structlog's and the standard
    library's alike: context first, level, timestamp, redaction."""
    stamp = (
        structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False)
        if log_format == "console"
        else structlog.processors.TimeStamper(fmt="iso", utc=True)
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        stamp,
        _one_job_type,
    ]


def _renderer(log_format: LogFormat, colors: bool) -> list[Any]:
    if log_format == "console":
        return [redact_log_event, structlog.dev.ConsoleRenderer(colors=colors)]
    return [
        _logger_on_problems,
        structlog.processors.format_exc_info,
        redact_log_event,  # no credentials, payloads or results in any line
        structlog.processors.JSONRenderer(),
    ]


def processors_for(log_format: LogFormat, *, colors: bool = False) -> list[Any]:
    """The processor chain of a format: contextvars first, level, timestamp, renderer last."""
    return [*_pre_chain(log_format), *_renderer(log_format, colors)]


CHATTY_LIBRARIES = (
    "botocore",
    "boto3",
    "urllib3",
    "mangum",
    "asyncio",
    "httpx",
    "httpcore",
    "moto",
    "werkzeug",
)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to `sys.stdout` as it is when a record is emitted."""

    def __init__(self) -> None:
        super().__init__(cast(TextIO, _Stdout()))


def _route_standard_logging(log_format: LogFormat, level: int, colors: bool) -> None:
    """Send the standard library's records through structlog's processors: the root logger gets
    one handler (replacing the Lambda runtime's text handler), rendering like every other line."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_pre_chain(log_format),
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer(log_format, colors),
        ],
    )
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    # The standard library's loggers (a handler's own, a library's) log INFO and above; Jobline's
    # DEBUG is structlog's. Libraries' own chatter (per request or per call: botocore, Mangum, and
    # the local stack's moto and werkzeug) is for debugging them, not operating Jobline.
    root.setLevel(max(level, logging.INFO))
    for chatty in CHATTY_LIBRARIES:
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))


def configure(level: str | None = None, log_format: LogFormat | None = None) -> None:
    """Configure structlog; safe to call many times (only the first call acts).

    None (the defaults) takes each from the environment: `JOBLINE_LOG_LEVEL`, and the format from
    `JOBLINE_LOG_FORMAT`, whether stdout is a terminal, whether this is Lambda (`choose_format`)."""
    global _configured, _format
    if _configured:
        return
    from jobline.config import log_settings

    global _in_lambda
    settings = log_settings()
    chosen = log_format or _configured_format()
    level = level or settings.level
    number = logging.getLevelNamesMapping()[level.upper()]
    colors = _stdout_is_terminal()
    use_for_logs(Redaction.of(settings.redact_headers))
    structlog.configure(
        processors=processors_for(chosen, colors=colors),
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _Stdout())),
        cache_logger_on_first_use=True,
    )
    _route_standard_logging(chosen, number, colors)
    _in_lambda = settings.in_lambda
    _format = chosen
    _configured = True


def current_format() -> LogFormat:
    """The format `configure` chose (JSON before it is called)."""
    return _format


def get_logger(name: str) -> Any:
    """A structlog logger whose lines carry the module name as `logger`."""
    return structlog.get_logger(logger_name=name)


def bind_invocation(request_id: str | None, function_name: str | None) -> None:
    """Start a fresh log context for one Lambda invocation. In Lambda each function has a log
    group of its own, so the lines do not repeat its name; locally (`make run`, every function
    on one stdout) they do."""
    structlog.contextvars.clear_contextvars()
    if _in_lambda:
        structlog.contextvars.bind_contextvars(aws_request_id=request_id)
    else:
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
