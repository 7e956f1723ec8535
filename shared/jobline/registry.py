"""Job types: name -> input model + handler (a callable, or an import path resolved on first use
in the worker). The deployment's types are found by `jobline.discovery`; the examples (echo, sleep,
http.request) are a package of their own, `jobline_examples`, loaded the same way."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel, ValidationError

from jobline.backoff import Backoff
from jobline.errors import (
    DeadlineExceeded,
    InvalidJobTypeDeclaration,
    InvalidPayload,
    JobCancelled,
    JobHandlerError,
    PermanentJobError,
    UnknownJobType,
)
from jobline.limits import DEFAULT_TIMEOUT_S, LAMBDA_MAX_TIMEOUT_S, MAX_RUNTIME_S
from jobline.targets import LambdaTarget, LocalTarget, Target, parse_target

__all__ = [
    "Continue",
    "DeadlineExceeded",
    "InvalidJobTypeDeclaration",
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


CheckpointSink = Callable[[Any], None]


def _nowhere(state: Any) -> None:
    """A checkpoint of a context made outside the service goes nowhere."""


@dataclass(frozen=True)
class Continue:
    """What a handler returns to go on in a new invocation: the job is queued again at once with
    `state` saved (not a failed attempt), and its handler is called again with `context.state`
    set to it. Only types that declare `max_runtime_s` may continue; the chain ends with an
    ordinary result or error, or fails once `max_runtime_s` has passed."""

    state: Any


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
    state: Any = None
    """What the handler last saved (`checkpoint`, or a `Continue`) in this run: where to pick up
    after a continuation, or after a worker died mid-way. None at the start of a run."""
    checkpoint_sink: CheckpointSink = _nowhere
    """Where `checkpoint` writes (the service: the job's item, at once, fenced by the claim)."""

    def remaining_seconds(self) -> float:
        """Seconds left before the attempt's deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def report_progress(self, percent: float, message: str | None = None) -> None:
        """Record progress (0..100, optional message); writes are throttled by the service."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be within 0..100, got {percent}")
        self.progress_sink(float(percent), message)

    def checkpoint(self, state: Any) -> None:
        """Save `state` (JSON, at most `limits.MAX_CHECKPOINT_BYTES`) on the job now: the next
        invocation of this run (a continuation, or a new attempt after the worker died) starts
        with it as `context.state`. A later checkpoint replaces an earlier one, never the reverse."""
        self.checkpoint_sink(state)
        self.state = state

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


def _whole_numbers_as_ints(value: Any) -> Any:
    """`value` with every finite float that has no fraction (5.0) as the int it equals: JSON
    has one number type, and a strict int field must take what the schema's "integer" takes (a
    float field takes ints as they are). Only the validated copy changes, not the stored payload."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _whole_numbers_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_ints(item) for item in value]
    return value


def _has_whole_floats(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_whole_floats(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_whole_floats(item) for item in value)
    return False


HANDLER_PATH = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
)
"""`package.module:function` (the attribute may be dotted: `module:Class.method`)."""


@dataclass(frozen=True)
class JobType(Generic[InputT]):
    """A job type's declaration, in two parts: what the API needs (name, description, input
    model: the published schema) and what only the worker needs (the handler).

    Declare the handler as an import path, `"package.module:function"`, to keep its module (and
    whatever it imports) out of the API: it is imported on first use, in the worker only (whose
    init resolves every type's, `JobTypeRegistry.resolve_all`). A callable works too (tests, light
    handlers). Either way the handler is `handler(payload, context)`, plain or `async def`.

    Or declare a `target` instead: a Lambda function of your own, invoked by the worker
    (`jobline.targets`: the event it gets, how its errors count).
    """

    name: str
    description: str
    input_model: type[InputT]
    handler: str | Callable[..., Any] | None = None
    """`"package.module:function"` (resolved on first use, in the worker only: the API never
    imports handler code), or a callable (tests, light handlers)."""
    target: str | None = None
    """A Lambda function ARN the worker invokes instead of a handler (exactly one of handler and
    target). Locally also "local:package.module:function" (make run: a Python callable stands in
    for the function; refused on Lambda)."""
    backoff: Backoff | None = None
    """Retry delays for this type; None uses the deployment's settings."""
    timeout_s: int = DEFAULT_TIMEOUT_S
    """The longest one attempt (one invocation's run of the handler) may take; it picks the lane
    (`jobline.lanes`): a type whose attempts fit no lane is refused when it is registered."""
    max_runtime_s: int | None = None
    """With continuations (`Continue`): the longest a whole attempt may take across its chain
    of invocations, from its first start (None: the type does not continue)."""

    def __post_init__(self) -> None:
        if not 1 <= self.timeout_s <= LAMBDA_MAX_TIMEOUT_S:
            raise InvalidJobTypeDeclaration(
                self.name,
                f"timeout_s must be within 1..{LAMBDA_MAX_TIMEOUT_S} (one Lambda "
                f"invocation), not {self.timeout_s}; longer work continues (max_runtime_s)",
            )
        if self.max_runtime_s is not None and not (
            self.timeout_s <= self.max_runtime_s <= MAX_RUNTIME_S
        ):
            raise InvalidJobTypeDeclaration(
                self.name,
                f"max_runtime_s must be within timeout_s..{MAX_RUNTIME_S}, not "
                f"{self.max_runtime_s}",
            )
        handler = self.handler
        if (handler is None) == (self.target is None):
            raise InvalidJobTypeDeclaration(
                self.name,
                "declares both a handler and a target"
                if handler is not None
                else "declares no handler (nor a target)",
            )
        if self.target is not None:
            self._check_target(self.target)
        elif isinstance(handler, str):
            if not HANDLER_PATH.fullmatch(handler):
                raise InvalidJobTypeDeclaration(
                    self.name,
                    f"handler {handler!r} is not an import path "
                    '"package.module:function"',
                )
        else:
            _check_handler(self.name, handler)

    def _check_target(self, target: str) -> None:
        try:
            parsed = parse_target(target)
        except ValueError as exc:
            raise InvalidJobTypeDeclaration(self.name, str(exc)) from None
        if isinstance(parsed, LocalTarget) and not HANDLER_PATH.fullmatch(parsed.path):
            raise InvalidJobTypeDeclaration(
                self.name,
                f"target {target!r} is not a local callable "
                '"local:package.module:function"',
            )

    @cached_property
    def function(self) -> Target | None:
        """The target function (None: the type runs a handler)."""
        return None if self.target is None else parse_target(self.target)

    def parse(self, payload: Any) -> InputT:
        """Validate a payload (decoded JSON) as JSON, strictly: what the published schema
        (`input_schema`) refuses is refused (no `true` for 1, no `"5"` for 5), and what it accepts
        is accepted (JSON Schema's "integer" is any number without a fraction: 5.0 is one, as a
        JavaScript client may send it); raise `InvalidPayload` with field-level details."""
        try:
            text = json.dumps(payload, allow_nan=False)
        except ValueError:
            raise InvalidPayload(
                self.name,
                [
                    {
                        "loc": ["payload"],
                        "msg": "not JSON (NaN or Infinity)",
                        "type": "json_invalid",
                    }
                ],
            ) from None
        try:
            return self.input_model.model_validate_json(text, strict=True)
        except ValidationError as refused:
            failure = refused
        if _has_whole_floats(payload):
            # a strict int field refused 5.0: validate again with it as 5 (a payload that holds
            # such numbers and is valid as it is keeps them: echo returns 5.0)
            try:
                return self.input_model.model_validate_json(
                    json.dumps(_whole_numbers_as_ints(payload)), strict=True
                )
            except ValidationError as refused_again:
                failure = refused_again
        errors = [
            {
                "loc": ["payload", *err["loc"]],
                "msg": err["msg"],
                "type": err["type"],
            }
            for err in failure.errors(
                include_url=False, include_context=False, include_input=False
            )
        ]
        raise InvalidPayload(self.name, errors) from failure

    def resolve(self) -> Callable[..., Any]:
        """The handler callable: imported on first use when declared as a path, checked, cached
        (for a `local:` target, the callable standing in for the function). Raises
        `InvalidJobTypeDeclaration` naming the type when it cannot work, or has none (a Lambda
        ARN target)."""
        return self._resolved

    @cached_property
    def _resolved(self) -> Callable[..., Any]:
        function = self.function
        if isinstance(function, LambdaTarget):
            raise InvalidJobTypeDeclaration(
                self.name, "has no handler: its target function is invoked"
            )
        handler = function.path if isinstance(function, LocalTarget) else self.handler
        if isinstance(handler, str):
            handler = _import_handler(self.name, handler)
            _check_handler(self.name, handler)
        assert handler is not None  # __post_init__
        return handler

    @property
    def is_async(self) -> bool:
        """Whether the handler is an `async def` (the attempt awaits it on the handler loop).
        Never for a target: its invocation is I/O the attempt waits for in a thread."""
        return self.target is None and _is_coroutine_function(self.resolve())

    def run(self, payload: Any, context: JobContext) -> JSONValue:
        """Validate the stored payload again and call a plain handler (an `async def` one runs
        through `run_async`; a type with a target is invoked by the attempt, not run here)."""
        if self.target is not None:
            raise TypeError(f"job type {self.name!r} has a target: invoke it")
        handler = self.resolve()
        if _is_coroutine_function(handler):
            raise TypeError(
                f"job type {self.name!r} has an async handler: await run_async"
            )
        result = handler(self.parse(payload), context)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise PermanentJobError(
                f"the handler of {self.name!r} returned an awaitable: declare it `async def`"
            )
        return result

    async def run_async(self, payload: Any, context: JobContext) -> JSONValue:
        """Validate the stored payload again and await an `async def` handler."""
        handler = self.resolve()
        return await handler(self.parse(payload), context)

    def input_schema(self) -> dict[str, Any]:
        """JSON Schema of the input model: what `parse` accepts, exactly."""
        return self.input_model.model_json_schema()


def _is_coroutine_function(handler: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 (a callable object's async __call__)
    )


def _import_handler(job_type: str, path: str) -> Callable[..., Any]:
    """The object `path` ("module:attribute") names; `InvalidJobTypeDeclaration` if none."""
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # re-raised below, naming the type (the cause is chained)
        raise InvalidJobTypeDeclaration(
            job_type,
            f"cannot import handler module {module_name!r}: {type(exc).__name__}: {exc}",
        ) from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InvalidJobTypeDeclaration(
                job_type,
                f"handler {path!r}: {module_name} has no attribute {attribute!r}",
            ) from None
    return cast(Callable[..., Any], target)


def _check_handler(job_type: str, handler: Any) -> None:
    """Refuse what cannot be called as `handler(payload, context)`."""
    if not callable(handler):
        raise InvalidJobTypeDeclaration(
            job_type, f"handler {handler!r} is not callable"
        )
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return  # a builtin without a signature: nothing to check before it runs
    try:
        signature.bind(None, None)
    except TypeError:
        raise InvalidJobTypeDeclaration(
            job_type,
            f"handler {getattr(handler, '__qualname__', handler)!r} cannot be called as "
            f"handler(payload, context): its signature is {signature}",
        ) from None


class JobTypeRegistry:
    """The job types a deployment knows."""

    def __init__(self, job_types: Iterable[JobType[Any]] = ()) -> None:
        self._types: dict[str, JobType[Any]] = {}
        for job_type in job_types:
            self.register(job_type)

    def register(self, job_type: JobType[Any]) -> None:
        """Add a job type; names are unique."""
        if job_type.name in self._types:
            raise InvalidJobTypeDeclaration(
                job_type.name, "is declared twice (names are unique)"
            )
        self._types[job_type.name] = job_type

    def get(self, name: str) -> JobType[Any]:
        """The job type called `name`, or `UnknownJobType`."""
        try:
            return self._types[name]
        except KeyError:
            raise UnknownJobType(name, self.names()) from None

    def handler(self, name: str) -> Callable[..., Any]:
        """The handler of the type called `name`, resolved (imported) on first use."""
        return self.get(name).resolve()

    def resolve_all(self, *, local_targets: bool = True) -> None:
        """Resolve every type's handler now (the worker's init): a handler that cannot work
        (unimportable, not callable, not `(payload, context)`) stops the function here, naming
        its type, rather than failing its jobs one by one. So does a `local:` target when
        `local_targets` is False (on Lambda, where only a Lambda function can be one)."""
        for job_type in self:
            function = job_type.function
            if isinstance(function, LambdaTarget):
                continue
            if isinstance(function, LocalTarget) and not local_targets:
                raise InvalidJobTypeDeclaration(
                    job_type.name,
                    f"target {job_type.target!r} is a local callable, which runs only "
                    "locally (make run): on Lambda a target is a Lambda function ARN",
                )
            job_type.resolve()

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._types)

    def __iter__(self) -> Iterator[JobType[Any]]:
        return iter(self._types[name] for name in self.names())
