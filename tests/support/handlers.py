"""Handlers of both kinds: the use-case tests that hold the worker's semantics (execution, progress
and cancellation, leases and deadlines) run once with plain handlers and once with `async def`
ones. `handler_kind` (a fixture in tests/unit/conftest.py) sets the kind; `job_type_of` declares
each test's handler as that kind: the same body, run in its own thread or awaited as a task on the
handler loop."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

from jobline.registry import JobContext

HandlerKind = Literal["sync", "async"]
KINDS: tuple[HandlerKind, ...] = ("sync", "async")

_kind: ContextVar[HandlerKind] = ContextVar("handler_kind", default="sync")


@contextmanager
def declared_as(kind: HandlerKind) -> Iterator[None]:
    """Declare the handlers of the job types made within as `kind`."""
    token = _kind.set(kind)
    try:
        yield
    finally:
        _kind.reset(token)


def current_kind() -> HandlerKind:
    return _kind.get()


def as_async(handler: Callable[[Any, JobContext], Any]) -> Callable[..., Any]:
    """`handler` as an `async def`: the same body, awaited on the handler loop."""

    async def handle(payload: Any, context: JobContext) -> Any:
        return handler(payload, context)

    handle.__qualname__ = f"async_{getattr(handler, '__qualname__', 'handler')}"
    return handle


def of_current_kind(handler: Callable[[Any, JobContext], Any]) -> Callable[..., Any]:
    """`handler` as the current kind declares it (an async one stays async)."""
    if current_kind() == "async" and not inspect.iscoroutinefunction(handler):
        return as_async(handler)
    return handler
