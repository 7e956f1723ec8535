"""The threads of a local event source mapping (SQS or stream): the loop that polls, invokes and
keeps going through errors, as Lambda's pollers do."""

from __future__ import annotations

import threading
import time

from botocore.exceptions import BotoCoreError, ClientError
from jobline.logging import get_logger

log = get_logger(__name__)


class MappingThread:
    """An event source mapping's threads: each calls `poll_once` until stopped, pausing after an
    unreachable endpoint (as Lambda retries) or a bug (never silently ending the mapping).

    `concurrency` threads run at once, each receiving and invoking on its own: one for a stream's
    shard (its batches go in order), up to the mapping's MaximumConcurrency for a queue."""

    function_name: str
    concurrency: int = 1
    _stop: threading.Event
    _threads: tuple[threading.Thread, ...] = ()

    def poll_once(self) -> object:
        """One round; something falsy when there was nothing to do (the loop pauses)."""
        raise NotImplementedError

    def started(self) -> None:
        """Log the mapping's start."""

    def _lost_endpoint(self) -> None:
        """Forget what a lost endpoint invalidates (a stream's iterator)."""

    def idle_s(self) -> float:
        """How long to pause after a round with nothing to do (0: the round itself waited)."""
        return 0.0

    def run(self) -> None:
        """Poll until the stop event is set (the body of each of the mapping's threads)."""
        while not self._stop.is_set():
            try:
                if not self.poll_once() and self.idle_s():
                    self._stop.wait(self.idle_s())
            except (
                BotoCoreError,
                ClientError,
            ) as exc:  # endpoint down: retry, as Lambda does
                log.warning(
                    "poller.poll_failed",
                    function=self.function_name,
                    error_type=type(exc).__name__,
                    error=str(exc),
                )
                self._lost_endpoint()
                self._stop.wait(1.0)
            except Exception:  # a bug here must not silently end the mapping
                log.exception("poller.crashed", function=self.function_name)
                self._stop.wait(1.0)

    def start(self) -> None:
        """Run the mapping in `concurrency` daemon threads of its own."""
        self.started()
        self._threads = tuple(
            threading.Thread(
                target=self.run,
                name=f"poller-{self.function_name}-{number}",
                daemon=True,
            )
            for number in range(self.concurrency)
        )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the mapping to stop and wait (at most `timeout_s` in all) for its threads; False
        when an invocation is still running."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        running = sum(thread.is_alive() for thread in self._threads)
        if self._threads and not running:
            log.info("poller.stopped", function=self.function_name)
        return not running
