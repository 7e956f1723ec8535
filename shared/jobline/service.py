"""`JobService`: one facade over Jobline's use cases, so routes, handlers and tools import one name.

Each use case lives in a module of its own and takes only the ports it needs:
`submission` (submit, idempotent replay), `queries` (get, list, job types), `control` (cancel,
retry), `execution` (claim, attempt, outcome, backoff, lease reclaim), `ingest` and `recovery`
(dead letters, redrive). The state machine they share is `lifecycle`. `bootstrap` wires them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobline.control import Control
from jobline.execution import Execution
from jobline.ingest import Ingest
from jobline.models import (
    Delivery,
    Job,
    JobFilter,
    JobMessage,
    JobPage,
    RunOutcome,
    SubmitRequest,
)
from jobline.queries import Queries
from jobline.recovery import Recovery
from jobline.registry import JobType, JobTypeRegistry
from jobline.submission import Submission, Submitted

__all__ = ["JobService", "RunOutcome", "Submitted"]


@dataclass(frozen=True)
class JobService:
    """Jobline's use cases behind one object (built by `jobline.bootstrap.build_service`)."""

    submission: Submission
    queries: Queries
    control: Control
    execution: Execution
    ingestion: Ingest
    recovery: Recovery
    registry: JobTypeRegistry

    def submit(
        self, owner: str, request: SubmitRequest, idempotency_key: str | None = None
    ) -> Submitted:
        """See `Submission.submit`."""
        return self.submission.submit(owner, request, idempotency_key)

    def get(self, owner: str, job_id: str) -> Job:
        """See `Queries.get`."""
        return self.queries.get(owner, job_id)

    def list_jobs(
        self,
        owner: str,
        job_filter: JobFilter,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """See `Queries.list_jobs`."""
        return self.queries.list_jobs(owner, job_filter, limit, cursor)

    def job_types(self) -> list[JobType[Any]]:
        """See `Queries.job_types`."""
        return self.queries.job_types()

    def cancel(self, owner: str, job_id: str) -> Job:
        """See `Control.cancel`."""
        return self.control.cancel(owner, job_id)

    def retry(self, owner: str, job_id: str) -> Job:
        """See `Control.retry`."""
        return self.control.retry(owner, job_id)

    def ingest(
        self, submission: Any, *, message_id: str, default_owner: str
    ) -> Submitted:
        """See `Ingest.ingest`."""
        return self.ingestion.ingest(
            submission, message_id=message_id, default_owner=default_owner
        )

    def run(self, delivery: Delivery) -> RunOutcome:
        """See `Execution.run`."""
        return self.execution.run(delivery)

    def dead_letter(self, message: JobMessage, receive_count: int) -> Job | None:
        """See `Recovery.dead_letter`."""
        return self.recovery.dead_letter(message, receive_count)

    def requeue_dead_lettered(self, message: JobMessage) -> Job | None:
        """See `Recovery.requeue_dead_lettered`."""
        return self.recovery.requeue_dead_lettered(message)
