"""What the service needs from storage and the queue. Adapters implement these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from jobline.models import Attempt, Job, JobFilter, JobMessage, JobStatus

StartKey = dict[str, str]
"""Where a listing resumes: opaque to the service, signed into the cursor."""


@dataclass(frozen=True)
class Expect:
    """The condition a write needs: the job exists, belongs to `owner` and is in one of `status_in`
    (and, when given, has made exactly `attempts` attempts)."""

    owner: str
    status_in: frozenset[JobStatus]
    attempts: int | None = None
    lease_expired_before: datetime | None = None
    """Also accept a `running` job whose `lease_until` is earlier than this (its worker died)."""
    below_max_attempts: bool = False
    """Require `attempts < max_attempts`."""


@dataclass(frozen=True)
class Change:
    """Fields to set (None removes the attribute) and whether to add one to `attempts`."""

    values: Mapping[str, Any] = field(default_factory=dict)
    increment_attempts: bool = False
    append_history: tuple[Attempt, ...] = ()
    """Add these entries at the end of `history`."""
    set_history: Mapping[int, Attempt] = field(default_factory=dict)
    """Replace `history[index]` with the entry."""


class JobRepository(Protocol):
    """Job storage with conditional writes. Lost conditions raise `ConditionFailed(current)`."""

    def create(self, job: Job, now: datetime) -> None:
        """Store a new job unless a live job with its id exists."""

    def get(self, job_id: str) -> Job | None:
        """The stored job (expired or not), strongly consistent."""

    def update(
        self, job_id: str, change: Change, expect: Expect, *, return_old: bool = False
    ) -> Job:
        """Apply `change` if `expect` holds; return the job after the write (before it, with
        `return_old`)."""

    def delete(self, job_id: str, expect: Expect) -> None:
        """Remove a job if `expect` holds."""

    def query(
        self,
        owner: str,
        job_filter: JobFilter,
        limit: int,
        start: StartKey | None,
        now: datetime,
    ) -> tuple[list[Job], StartKey | None]:
        """Up to `limit` live jobs of `owner`, newest first, and where to resume."""


class JobQueue(Protocol):
    """The jobs queue."""

    def send(self, message: JobMessage, delay_seconds: int) -> str:
        """Enqueue a job message; return the message id."""

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received message for `seconds` from now (0 makes it visible at once)."""
