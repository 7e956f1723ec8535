"""The outbox's dispatcher: the table's stream hands it every job write; for each write that left
a job `queued` with `dispatch` set (a submit, a retry), it sends the job's message, delayed until
the job is due. Duplicates (the stream delivers at least once) send a second message, which the
claim makes harmless: it is the one place a job message is ever sent."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from jobline import lifecycle
from jobline.errors import QueueUnavailable
from jobline.limits import SQS_MAX_BATCH, SQS_MAX_DELAY_S
from jobline.logging import get_logger
from jobline.models import Job, JobMessage
from jobline.ports import JobQueue

log = get_logger(__name__)


def delay_of(job: Job, now: datetime) -> int:
    """Whole seconds until the job is due (0 when it is), at most SQS's 15 minutes."""
    if job.run_after is None:
        return 0
    seconds = math.ceil((job.run_after - now).total_seconds())
    return max(0, min(SQS_MAX_DELAY_S, seconds))


@dataclass(frozen=True)
class Dispatch:
    """The dispatch use case: jobs as the stream shows them in, their messages out."""

    queue: JobQueue
    clock: Callable[[], datetime]

    def dispatch(self, jobs: Sequence[Job]) -> list[bool]:
        """Send the message of every job that needs one, in batches of ten. For each job, whether
        it is done with (sent, or needing none); a False one must be handed over again."""
        done = [True] * len(jobs)
        pending = [
            (index, job)
            for index, job in enumerate(jobs)
            if lifecycle.needs_message(job)
        ]
        now = self.clock()
        lanes: dict[str, list[tuple[int, Job]]] = {}
        for index, job in pending:
            lanes.setdefault(job.lane, []).append((index, job))
        for lane, waiting in lanes.items():
            for start in range(0, len(waiting), SQS_MAX_BATCH):
                chunk = waiting[start : start + SQS_MAX_BATCH]
                self._send(lane, chunk, now, done)
        return done

    def _send(
        self, lane: str, chunk: list[tuple[int, Job]], now: datetime, done: list[bool]
    ) -> None:
        """One SendMessageBatch to `lane`'s queue; marks each job done when SQS accepted it."""
        messages = [
            (
                JobMessage(
                    job_id=job.id,
                    owner=job.owner,
                    job_type=job.type,
                    correlation_id=job.correlation_id,
                    run=job.run,
                ),
                delay_of(job, now),
            )
            for _, job in chunk
        ]
        try:
            accepted = self.queue.send_batch(messages, lane)
        except QueueUnavailable as exc:
            log.error("job.dispatch_failed", jobs=len(chunk), error=exc.message)
            accepted = [False] * len(chunk)
        for (index, job), (_, delay), ok in zip(chunk, messages, accepted, strict=True):
            done[index] = ok
            if ok:
                log.debug(
                    "job.dispatched",
                    job_id=job.id,
                    job_type=job.type,
                    correlation_id=job.correlation_id,
                    delay_seconds=delay,
                )
            else:
                log.warning("job.dispatch_refused", job_id=job.id, job_type=job.type)
