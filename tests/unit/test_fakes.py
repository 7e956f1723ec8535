"""The in-memory fakes keep the adapters' contracts."""

from __future__ import annotations

import pytest
from jobline.errors import ConditionFailed
from jobline.models import JobStatus
from jobline.transition import JobUpdate, Precondition

from tests.builders import ANN, BOB, UNKNOWN_ID, Fakes, echo_request


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
        repo.delete(UNKNOWN_ID, wrong_owner)
    assert missing.value.current is None
