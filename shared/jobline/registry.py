"""Job types: name -> input model + typed handler. Built-in types live in `jobline.job_types`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from jobline.backoff import Backoff
from jobline.errors import (
    DeadlineExceeded,
    InvalidPayload,
    JobCancelled,
    JobHandlerError,
    PermanentJobError,
    UnknownJobType,
)
from jobline.limits import LAMBDA_MAX_TIMEOUT_S

__all__ = [
    "DeadlineExceeded",
    "JobCancelled",
    "JobContext",
    "JobHandlerError",
    "JobType",
    "JobTypeRegistry",
    "PermanentJobError",
]

InputT = TypeVar("InputT", bound=BaseModel)

JSONValue = Any
"""What a handler returns: anything `json.dumps` accepts (no NaN/Infinity)."""


ProgressSink = Callable[[float, str | None], None]
CancelProbe = Callable[[], bool]


def _no_progress(percent: float, message: str | None) -> None:
    """Progress of a context made outside the service (a handler called directly) goes nowhere."""


def _never_cancelled() -> bool:
    return False


@dataclass
class JobContext:
    """What a handler may know about, and tell, the attempt running it.

    The service builds it with a progress sink and a cancellation probe that talk to the job store
    (both throttled); a context built by hand (tests, scripts) records nothing and is never cancelled.
    """

    job_id: str
    job_type: str
    attempt: int
    """The attempt within the current run (1 for the first)."""
    max_attempts: int
    deadline: float = field(
        default_factory=lambda: time.monotonic() + LAMBDA_MAX_TIMEOUT_S
    )
    """`time.monotonic()` value at which the attempt must have returned."""
    progress_sink: ProgressSink = _no_progress
    cancel_probe: CancelProbe = _never_cancelled
    stop_event: threading.Event = field(default_factory=threading.Event)
    """Set by the service when the attempt is being abandoned (deadline reached)."""
    run: int = 1
    """The job's run: 1, then one more at each retry or redrive."""

    def remaining_seconds(self) -> float:
        """Seconds left before the attempt's deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def report_progress(self, percent: float, message: str | None = None) -> None:
        """Record progress (0..100, optional message); writes are throttled by the service."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be within 0..100, got {percent}")
        self.progress_sink(float(percent), message)

    def cancel_requested(self) -> bool:
        """True once the job's cancellation was requested or the attempt is being stopped."""
        return self.stop_event.is_set() or self.cancel_probe()

    def raise_if_cancelled(self) -> None:
        """A checkpoint: raise `JobCancelled` when cancellation was requested, `DeadlineExceeded`
        when the attempt is out of time."""
        if self.stop_event.is_set() or self.remaining_seconds() <= 0:
            raise DeadlineExceeded("the attempt reached its deadline")
        if self.cancel_probe():
            raise JobCancelled(f"job {self.job_id} was cancelled")


@dataclass(frozen=True)
class JobType(Generic[InputT]):
    """A registered job type."""

    name: str
    description: str
    input_model: type[InputT]
    handler: Callable[[InputT, JobContext], JSONValue]
    backoff: Backoff | None = None
    """Retry delays for this type; None uses the deployment's settings."""

    def parse(self, payload: Any) -> InputT:
        """Validate a payload; raise `InvalidPayload` with field-level details."""
        try:
            return self.input_model.model_validate(payload)
        except ValidationError as exc:
            errors = [
                {
                    "loc": ["payload", *err["loc"]],
                    "msg": err["msg"],
                    "type": err["type"],
                }
                for err in exc.errors(
                    include_url=False, include_context=False, include_input=False
                )
            ]
            raise InvalidPayload(self.name, errors) from exc

    def run(self, payload: Any, context: JobContext) -> JSONValue:
        """Validate the stored payload again and call the handler."""
        return self.handler(self.parse(payload), context)

    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of the input model."""
        return self.input_model.model_json_schema()


class JobTypeRegistry:
    """The job types a deployment knows."""

    def __init__(self, job_types: Iterable[JobType[Any]] = ()) -> None:
        self._types: dict[str, JobType[Any]] = {}
        for job_type in job_types:
            self.register(job_type)

    def register(self, job_type: JobType[Any]) -> None:
        """Add a job type; names are unique."""
        if job_type.name in self._types:
            raise ValueError(f"job type {job_type.name!r} is already registered")
        self._types[job_type.name] = job_type

    def get(self, name: str) -> JobType[Any]:
        """The job type called `name`, or `UnknownJobType`."""
        try:
            return self._types[name]
        except KeyError:
            raise UnknownJobType(name, self.names()) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._types)

    def __iter__(self) -> Any:
        return iter(self._types[name] for name in self.names())
