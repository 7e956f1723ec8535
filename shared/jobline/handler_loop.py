"""The event loop on which this execution environment's `async def` handlers run: one loop, in a
daemon thread of its own, created on first use (a worker that runs no async handler never starts
it) and kept for the environment's life, like its clients.

The records of a batch are claimed and recorded in their own threads (`jobline.sqs_batch`); each
record's async handler is a task on this one loop, so the async handlers of a batch run
concurrently on one event loop, overlapping their awaits. A task starts in a copy of the
submitting thread's context: the record's log keys (job id, message id) stay on its log lines.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from functools import lru_cache
from typing import Any, TypeVar

T = TypeVar("T")


class HandlerLoop:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, name="handler-loop", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Start `coroutine` as a task on the loop (in a copy of the caller's context); its
        future, which `cancel()` cancels (the task gets `CancelledError` at its next await)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)


@lru_cache(maxsize=1)
def handler_loop() -> HandlerLoop:
    """This execution environment's handler loop, started on first use."""
    return HandlerLoop()
