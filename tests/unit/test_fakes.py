"""The in-memory fakes keep the adapters' contracts."""

from __future__ import annotations

import pytest
from jobline.errors import ConditionFailed, StorageUnavailable
from jobline.models import JobStatus
from jobline.transition import JobUpdate, Precondition

from tests.support.builders import ANN, BOB, UNKNOWN_ID, Fakes, echo_request


def test_the_fake_repository_refuses_writes_whose_expectation_fails(
    fakes: Fakes,
) -> None:
    # The fake keeps the adapter's contract: a lost condition reports the current item
    service, repo, _ = fakes
    job = service.submit(ANN, echo_request()).job
    wrong_owner = Precondition(owner=BOB, status_in=frozenset({JobStatus.QUEUED}))
    wrong_attempts = Precondition(
        owner=ANN, status_in=frozenset({JobStatus.QUEUED}), attempts=3
    )

    for expect in (wrong_owner, wrong_attempts):
        with pytest.raises(ConditionFailed) as caught:
            repo.update(job.id, JobUpdate(status=JobStatus.RUNNING), expect)
        assert caught.value.current == job
    with pytest.raises(ConditionFailed) as missing:
        repo.update(UNKNOWN_ID, JobUpdate(status=JobStatus.RUNNING), wrong_owner)
    assert missing.value.current is None


def test_the_fake_repository_recognises_its_own_earlier_write(fakes: Fakes) -> None:
    # Given a write applied whose answer was lost (as after botocore's retries)
    service, repo, _ = fakes
    job = service.submit(ANN, echo_request()).job
    claim = Precondition(owner=ANN, status_in=frozenset({JobStatus.QUEUED}))
    repo.lose_responses[job.id] = 1
    with pytest.raises(StorageUnavailable):
        repo.update(job.id, JobUpdate(status=JobStatus.RUNNING), claim, token="t-1")

    # When the same logical write is tried again, and another one too
    again = repo.update(job.id, JobUpdate(status=JobStatus.RUNNING), claim, token="t-1")

    # Then the retry answers the job as the write left it; any other write lost its condition
    assert again.status is JobStatus.RUNNING
    with pytest.raises(ConditionFailed):
        repo.update(job.id, JobUpdate(status=JobStatus.RUNNING), claim, token="t-2")
