"""`JobService`: one object over Jobline's use cases, so routes, handlers and tools import one name.

Each use case lives in a module of its own and takes only the ports it needs:
`submission` (submit, idempotent replay), `queries` (get, list, job types), `control` (cancel,
retry), `execution` (claim, attempt, outcome, backoff, lease reclaim), `ingest`, `recovery`
(dead letters, redrive) and `dispatch` (the outbox: a message for every job the stream shows
queued). The state machine they share is `lifecycle`; `bootstrap` wires them.
"""

from __future__ import annotations

from jobline.control import Control
from jobline.dispatch import Dispatch
from jobline.execution import Execution
from jobline.ingest import Ingest
from jobline.models import RunOutcome
from jobline.queries import Queries
from jobline.recovery import Recovery
from jobline.registry import JobTypeRegistry
from jobline.submission import Submission, Submitted

__all__ = ["JobService", "RunOutcome", "Submitted"]


class JobService:
    """Jobline's use cases behind one object (built by `jobline.bootstrap.build_service`): each
    method is the use case's own, bound here, so its signature and docstring are the one place."""

    def __init__(
        self,
        submission: Submission,
        queries: Queries,
        control: Control,
        execution: Execution,
        ingestion: Ingest,
        recovery: Recovery,
        dispatch: Dispatch,
        registry: JobTypeRegistry,
    ) -> None:
        self.registry = registry
        self.submit = submission.submit
        self.get = queries.get
        self.list_jobs = queries.list_jobs
        self.job_types = queries.job_types
        self.cancel = control.cancel
        self.retry = control.retry
        self.ingest = ingestion.ingest
        self.run = execution.run
        self.dead_letter = recovery.dead_letter
        self.requeue_dead_lettered = recovery.requeue_dead_lettered
        self.dispatch = dispatch.dispatch
