"""`JobService`: one object over Jobline's use cases, so routes, handlers and tools import one name.

Each use case lives in a module of its own and takes only the ports it needs:
`submission` (submit, idempotent replay), `queries` (get, list, job types), `control` (cancel,
retry), `claim_check` (large payloads and results in the data bucket: uploads, links), `execution` (claim, attempt, outcome, backoff, lease reclaim), `ingest`, `dead_letters`
(dead letters, redrive) and `dispatch` (the outbox: a message for every job the stream shows
queued). The state machine they share is `lifecycle`; `bootstrap` wires them.
"""

from __future__ import annotations

from jobline.models import RunOutcome
from jobline.registry import JobTypeRegistry
from jobline.usecases.claim_check import ClaimCheck
from jobline.usecases.control import Control
from jobline.usecases.dead_letters import DeadLetters
from jobline.usecases.dispatch import Dispatch
from jobline.usecases.execution import Execution
from jobline.usecases.ingest import Ingest
from jobline.usecases.queries import Queries
from jobline.usecases.submission import Submission, Submitted

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
        ingest: Ingest,
        dead_letters: DeadLetters,
        dispatch: Dispatch,
        claim_check: ClaimCheck,
        registry: JobTypeRegistry,
    ) -> None:
        self.registry = registry
        self.submit = submission.submit
        self.get = queries.get
        self.list_jobs = queries.list_jobs
        self.job_types = queries.job_types
        self.cancel = control.cancel
        self.retry = control.retry
        self.ingest = ingest.ingest
        self.run = execution.run
        self.dead_letter = dead_letters.dead_letter
        self.requeue_dead_lettered = dead_letters.requeue_dead_lettered
        self.dispatch = dispatch.dispatch
        self.new_upload = claim_check.new_upload
        self.links = claim_check.links
