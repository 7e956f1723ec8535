"""The in-memory fake and the DynamoDB adapter (on moto) keep the same contract for what the worker
relies on: the claim condition (queued, or running under an ended lease, with attempts left), the
job after the write, history appends, and stored progress.
Every test runs against both."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jobline.aws.repository import DynamoJobRepository
from jobline.errors import ConditionFailed
from jobline.models import Attempt, Job, JobError, JobStatus, Progress
from jobline.ports import JobRepository
from jobline.transition import JobUpdate, Precondition

from tests.conftest import MotoStack
from tests.support.fakes import InMemoryJobRepository

NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
QUEUED = frozenset({JobStatus.QUEUED})
RUNNING = frozenset({JobStatus.RUNNING})
CLAIM = Precondition(
    owner="ann", status_in=QUEUED, lease_ended_before=NOW, below_max_attempts=True
)


@pytest.fixture(params=["memory", "dynamodb"])
def repo(request: pytest.FixtureRequest) -> JobRepository:
    if request.param == "memory":
        return InMemoryJobRepository()
    stack: MotoStack = request.getfixturevalue("moto_stack")
    return DynamoJobRepository(stack.dynamodb, stack.table)


def stored_job(repo: JobRepository, **fields: Any) -> Job:
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "owner": "ann",
        "type": "echo",
        "status": JobStatus.QUEUED,
        "payload": {},
        "max_attempts": 3,
        "created_at": NOW - timedelta(minutes=5),
        "updated_at": NOW - timedelta(minutes=5),
        **fields,
    }
    job = Job.model_validate(values)
    repo.create(job, NOW)
    return job


def claim_change() -> JobUpdate:
    return JobUpdate(
        status=JobStatus.RUNNING,
        lease_until=NOW + timedelta(minutes=2),
        attempt_request_id="req-new",
        increment_attempts=True,
    )


@pytest.mark.parametrize(
    ("fields", "claimable"),
    [
        ({}, True),
        ({"status": JobStatus.QUEUED, "attempts": 2}, True),
        ({"status": JobStatus.QUEUED, "attempts": 3}, False),
        (
            {
                "status": JobStatus.RUNNING,
                "attempts": 1,
                "lease_until": NOW - timedelta(microseconds=1),
            },
            True,
        ),
        ({"status": JobStatus.RUNNING, "attempts": 1, "lease_until": NOW}, False),
        (
            {
                "status": JobStatus.RUNNING,
                "attempts": 1,
                "lease_until": NOW + timedelta(seconds=1),
            },
            False,
        ),
        ({"status": JobStatus.RUNNING, "attempts": 1}, True),
        (
            {
                "status": JobStatus.RUNNING,
                "attempts": 3,
                "lease_until": NOW - timedelta(seconds=1),
            },
            False,
        ),
        ({"status": JobStatus.SUCCEEDED, "attempts": 1}, False),
        ({"status": JobStatus.CANCELLED}, False),
    ],
    ids=[
        "queued",
        "queued-attempts-left",
        "queued-no-attempts-left",
        "running-lease-just-ended",
        "running-lease-ends-now",
        "running-lease-live",
        "running-without-lease",
        "running-lease-ended-no-attempts-left",
        "succeeded",
        "cancelled",
    ],
)
def test_the_claim_condition(
    repo: JobRepository, fields: dict[str, Any], claimable: bool
) -> None:
    # Given a job in some state
    job = stored_job(repo, **fields)

    # When a worker claims it
    try:
        claimed = repo.update(job.id, claim_change(), CLAIM)
    except ConditionFailed as lost:
        # Then an unclaimable job is refused with the job as stored, unchanged
        assert not claimable
        assert lost.current == job
        assert repo.get(job.id) == job
        return

    # Then a claimable one comes back as stored, claimed
    assert claimable
    assert claimed == repo.get(job.id)
    assert repo.get(job.id) == job.model_copy(
        update={
            "status": JobStatus.RUNNING,
            "attempts": job.attempts + 1,
            "lease_until": NOW + timedelta(minutes=2),
            "attempt_request_id": "req-new",
        }
    )


def test_history_is_appended_in_order(
    repo: JobRepository,
) -> None:
    # Given a running job without history
    job = stored_job(repo, status=JobStatus.RUNNING, attempts=2)
    lost = Attempt(
        attempt=1,
        started_at=NOW - timedelta(minutes=4),
        error=JobError(type="WorkerLost", message="gone"),
        request_id="req-1",
    )
    ran = Attempt(
        attempt=2,
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=1),
        request_id="req-2",
        duration_ms=1000,
    )
    expect = Precondition(owner="ann", status_in=RUNNING, attempts=2)

    # When entries are appended one write at a time
    repo.update(job.id, JobUpdate(append_history=(lost,)), expect)
    after_append = repo.update(job.id, JobUpdate(append_history=(ran,)), expect)

    # Then the history reads back exactly, in order
    assert after_append.history == (lost, ran)
    assert repo.get(job.id) == after_append


def test_removing_the_lease_and_storing_progress(repo: JobRepository) -> None:
    # Given a running job under a lease
    job = stored_job(
        repo,
        status=JobStatus.RUNNING,
        attempts=1,
        lease_until=NOW,
        attempt_request_id="req-1",
    )

    # When an outcome clears the lease and stores progress with a long fraction
    updated = repo.update(
        job.id,
        JobUpdate(
            status=JobStatus.QUEUED,
            lease_until=None,
            attempt_request_id=None,
            progress=Progress(percent=100 / 3, message=None, updated_at=NOW),
        ),
        Precondition(owner="ann", status_in=RUNNING, attempts=1),
    )

    # Then the lease is gone and the percent is kept to three decimals
    assert (updated.lease_until, updated.attempt_request_id) == (None, None)
    assert updated.progress == Progress(percent=33.333, message=None, updated_at=NOW)
    assert repo.get(job.id) == updated
