"""What the use cases need from storage and the queue. Adapters implement these."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from jobline.limits import LIST_PAGE_MAX_BYTES
from jobline.models import Job, JobFilter, JobMessage, JobSummary
from jobline.targets import FunctionAnswer
from jobline.transition import JobUpdate, Precondition

StartKey = dict[str, str]
"""Where a listing resumes: opaque to the service, signed into the cursor."""


class JobRepository(Protocol):
    """Job storage with conditional writes. Lost conditions raise `ConditionFailed(current)`;
    a write that meets its own earlier application (a retry after a lost response) succeeds."""

    def create(self, job: Job, now: datetime, *, token: str | None = None) -> None:
        """Store a new job unless a live job with its id exists (`token` names the write, a
        fresh one by default: a retry that meets its own earlier success succeeds)."""

    def get(self, job_id: str) -> Job | None:
        """The stored job (expired or not), strongly consistent."""

    def update(
        self,
        job_id: str,
        update: JobUpdate,
        precondition: Precondition,
        *,
        token: str | None = None,
    ) -> Job:
        """Apply `update` if `precondition` holds; return the job after the write. Calls with
        the same `token` are one logical write (a fresh token when None): a try that finds the
        write applied (the token is the item's last write's, one of its `control_tokens`, or a
        history entry's) returns the job as it is."""

    def query(
        self,
        owner: str,
        job_filter: JobFilter,
        limit: int,
        start: StartKey | None,
        now: datetime,
        *,
        max_bytes: int = LIST_PAGE_MAX_BYTES,
    ) -> tuple[list[JobSummary], StartKey | None]:
        """Up to `limit` live jobs of `owner`, newest first, as summaries, and where to resume
        (None: nothing more). Every job returned is one `models.matches(job, owner, job_filter,
        now)` admits: an index names where to look, never proof of ownership (this is the one
        visibility filter).

        A page also stops before its summaries' encoded size (`JobSummary.encoded_size`) would
        pass `max_bytes`; it holds at least one job whatever that one's size. A page may so hold
        fewer than `limit` jobs, even none (filters thin what an index read finds), with a resume
        key when more may remain: it resumes just after the last job returned or entry looked at,
        so following the keys lists every job once, none skipped, none repeated.

        A `start` that is not a key this version gives for `owner` and `job_filter` (another
        index's, attributes missing or unknown: a cursor from before an upgrade) raises
        `InvalidCursor` before storage sees it."""


class JobQueue(Protocol):
    """The jobs queue."""

    def send_batch(
        self, messages: Sequence[tuple[JobMessage, int]], lane: str = "default"
    ) -> list[bool]:
        """Enqueue up to ten (message, delay seconds) on `lane`'s queue; for each, whether it
        was accepted."""

    def postpone(
        self, receipt_handle: str, seconds: int, queue: str | None = None
    ) -> None:
        """Deliver a received message again no sooner than `seconds` from now (`queue`: the name
        of the queue it came from; None: the default lane's)."""


class FunctionInvoker(Protocol):
    """Lambda functions, invoked synchronously (a job type's target)."""

    def invoke(self, arn: str, event: bytes, *, deadline: float) -> FunctionAnswer:
        """Invoke the function `arn` names with the JSON `event` and wait for its answer (the
        function's own error is an answer: `FunctionAnswer.function_error`). An answer Lambda
        gives without running the function (throttled, a service error) is tried again while
        `deadline` (`time.monotonic()`) leaves time; then, and when Lambda refuses the call or the
        answer is lost, `FunctionInvokeFailed` (retryable unless Lambda refused it)."""


class BlobStore(Protocol):
    """The data bucket: JSON documents too large for a job's item (the claim check), written
    once under a key that names what they are. Unavailability raises `StorageUnavailable`."""

    def put(self, key: str, data: bytes, sha256: str) -> None:
        """Store `data` under `key`; `sha256` (hex) is its digest, which the store checks
        against what it received."""

    def get(self, key: str, max_bytes: int) -> bytes:
        """The object's bytes: `DataNotFound` when there is none, `DataTooLarge` (before
        reading it) when it is over `max_bytes`."""

    def touch(self, key: str) -> None:
        """Write the object again in place, so the bucket's lifecycle counts its days from now
        (`DataNotFound` when it is gone)."""

    def download_url(self, key: str, expires_in_s: int) -> str:
        """A URL that GETs the object without credentials for `expires_in_s` seconds."""

    def upload_form(
        self, key: str, max_bytes: int, expires_in_s: int
    ) -> tuple[str, dict[str, str]]:
        """Where and how to upload an object of at most `max_bytes` under `key` without
        credentials for `expires_in_s` seconds: a URL and the form fields a
        `multipart/form-data` POST sends before the file (an S3 POST policy)."""
