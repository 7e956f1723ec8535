"""Dead letters and redrive over in-memory fakes: a dead-lettered message marks its job, a
redriven one re-queues a dead-lettered job through the service."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jobline.errors import JobNotFound, StorageUnavailable
from jobline.models import JobError, JobMessage, JobStatus, SubmitRequest

from tests.support.builders import (
    ANN,
    BOB,
    UNKNOWN_ID,
    Fakes,
    finished_job,
    message_of,
    running_job,
)
from tests.support.fakes import START, counting_job_type, failing_handler
from tests.support.services import build_fake_service, build_registry


def _fakes() -> Fakes:
    """A service whose `count` jobs always fail (so a job can end failed)."""
    return build_fake_service(
        build_registry(
            [counting_job_type("count", failing_handler("boom", retryable=False))]
        )
    )


def test_a_queued_job_is_dead_lettered_with_the_receive_count() -> None:
    service, repo, _ = _fakes()
    job = service.submit(ANN, SubmitRequest(type="count")).job

    dead = service.dead_letter(message_of(job), receive_count=25)

    assert dead is not None and dead.status is JobStatus.DEAD_LETTERED
    assert dead.error == JobError(
        type="DeadLettered", message="the message was dead-lettered after 25 receives"
    )
    assert dead.expires_at is not None and dead.history == ()
    assert repo.jobs == [dead]


def test_a_running_job_keeps_its_last_error_and_its_lost_attempt() -> None:
    service, repo, _ = _fakes()
    error = JobError(type="Boom", message="earlier attempt")
    job = running_job(
        service, repo, lease_until=START - timedelta(seconds=1), error=error
    )

    dead = service.dead_letter(message_of(job), receive_count=25)

    assert dead is not None
    assert (dead.status, dead.error, dead.lease_until) == (
        JobStatus.DEAD_LETTERED,
        error,
        None,
    )
    [lost] = dead.history
    assert (lost.attempt, lost.request_id, lost.finished_at) == (1, "req-other", None)


@pytest.mark.parametrize(
    "status", [JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD_LETTERED]
)
def test_a_finished_job_is_left_alone(status: JobStatus) -> None:
    service, repo, _ = _fakes()
    job = finished_job(service, repo, status)

    assert service.dead_letter(message_of(job), receive_count=25) is None
    assert repo.get(job.id) == job


def test_a_message_naming_no_visible_job_is_not_found(fakes: Fakes) -> None:
    service, _, _ = fakes
    job = service.submit(ANN, SubmitRequest(type="echo")).job

    for message in (
        JobMessage(job_id=UNKNOWN_ID, owner=ANN),
        message_of(job, owner=BOB),
    ):
        with pytest.raises(JobNotFound):
            service.dead_letter(message, receive_count=3)


def test_a_storage_outage_is_raised(fakes: Fakes) -> None:
    service, repo, _ = fakes
    job = service.submit(ANN, SubmitRequest(type="echo")).job
    repo.broken[job.id] = StorageUnavailable("ThrottlingException")

    with pytest.raises(StorageUnavailable):
        service.dead_letter(message_of(job), receive_count=3)


def test_redriving_a_dead_lettered_job_requeues_it_with_a_new_message() -> None:
    service, repo, queue = _fakes()
    job = finished_job(service, repo, JobStatus.DEAD_LETTERED)
    sent_before = len(queue.sent)

    requeued = service.requeue_dead_lettered(message_of(job))

    assert requeued is not None
    assert (requeued.status, requeued.attempts) == (JobStatus.QUEUED, 0)
    assert [sent.message.job_id for sent in queue.sent[sent_before:]] == [job.id]


def test_redriving_any_other_message_is_left_to_the_mover() -> None:
    service, repo, queue = _fakes()
    queued = service.submit(ANN, SubmitRequest(type="count")).job
    failed = finished_job(service, repo, JobStatus.FAILED)
    sent_before = len(queue.sent)

    for message in (
        message_of(queued),
        message_of(failed),
        JobMessage(job_id=UNKNOWN_ID, owner=ANN),
        message_of(queued, owner=BOB),
    ):
        assert service.requeue_dead_lettered(message) is None
    assert len(queue.sent) == sent_before
    assert repo.get(failed.id) == failed
