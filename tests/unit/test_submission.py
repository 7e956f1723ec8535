"""Submit: validation, storage, enqueue, idempotency keys, when the first delivery is due."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from jobline.errors import (
    IdempotencyConflict,
    InvalidPayload,
    PayloadTooLarge,
    StorageUnavailable,
    SubmitOutcomeUnknown,
    UnknownJobType,
)
from jobline.models import Job, JobMessage, JobStatus, SubmitRequest

from tests.support.builders import ANN, BOB, Fakes, echo_request
from tests.support.fakes import START, FakeClock
from tests.support.services import build_fake_service

# ---------------------------------------------------------------------------- submit


def test_submit_stores_a_queued_job_and_enqueues_one_message(fakes: Fakes) -> None:
    service, repo, queue = fakes
    # Given a valid echo request with a delay
    request = echo_request({"x": 1}, max_attempts=5, delay_seconds=30)

    # When ann submits it
    submitted = service.submit(ANN, request)

    # Then one queued job is stored and one message for it is sent with the delay
    job = submitted.job
    assert submitted.created is True
    assert repo.jobs == [job]
    assert (job.owner, job.type, job.status, job.payload) == (
        ANN,
        "echo",
        JobStatus.QUEUED,
        {"x": 1},
    )
    assert (job.attempts, job.max_attempts, job.delay_seconds) == (0, 5, 30)
    assert job.created_at == job.updated_at == START
    assert [(s.message, s.delay_seconds) for s in queue.sent] == [
        (JobMessage(job_id=job.id, owner=ANN, job_type="echo", run=1), 30)
    ]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (SubmitRequest(type="nope", payload={}), UnknownJobType),
        (SubmitRequest(type="sleep", payload={"seconds": -1}), InvalidPayload),
        (SubmitRequest(type="sleep", payload={"seconds": "soon"}), InvalidPayload),
        (SubmitRequest(type="echo", payload=[1, 2]), InvalidPayload),
        (SubmitRequest(type="echo", payload={"x": float("nan")}), InvalidPayload),
        (SubmitRequest(type="echo", payload={"x": float("inf")}), InvalidPayload),
        (SubmitRequest(type="echo", payload={"x": "a" * 2000}), PayloadTooLarge),
    ],
    ids=[
        "unknown-type",
        "out-of-range",
        "wrong-type",
        "not-an-object",
        "nan",
        "infinity",
        "too-large",
    ],
)
def test_submit_rejects_before_storing_or_enqueuing(
    request_: SubmitRequest, error: type[Exception]
) -> None:
    # Given a service that accepts payloads up to 1 KiB
    service, repo, queue = build_fake_service(max_payload_bytes=1024)

    # When an invalid request is submitted
    with pytest.raises(error):
        service.submit(ANN, request_)

    # Then nothing was stored or enqueued
    assert repo.jobs == []
    assert queue.sent == []


def test_invalid_payload_carries_field_level_errors(fakes: Fakes) -> None:
    service, _, _ = fakes
    # When a sleep job is submitted with a negative duration
    with pytest.raises(InvalidPayload) as caught:
        service.submit(ANN, SubmitRequest(type="sleep", payload={"seconds": -1}))

    # Then the error names the field inside the payload
    assert [(e["loc"], e["type"]) for e in caught.value.errors] == [
        (["payload", "seconds"], "greater_than_equal")
    ]


def test_same_idempotency_key_and_body_returns_the_original_job(fakes: Fakes) -> None:
    service, repo, queue = fakes
    # Given a job submitted with an idempotency key
    first = service.submit(ANN, echo_request({"x": 1}), idempotency_key="k1")

    # When the same request is submitted again with the same key
    again = service.submit(ANN, echo_request({"x": 1}), idempotency_key="k1")

    # Then the original job comes back, nothing new is stored and one message was sent in all
    assert (first.created, again.created) == (True, False)
    assert again.job == first.job
    assert repo.jobs == [first.job]
    assert len(queue.sent) == 1


def test_same_idempotency_key_with_another_body_conflicts(fakes: Fakes) -> None:
    service, repo, queue = fakes
    # Given a job submitted with an idempotency key
    first = service.submit(ANN, echo_request({"x": 1}), idempotency_key="k1")

    # When another body is submitted with the same key
    with pytest.raises(IdempotencyConflict):
        service.submit(ANN, echo_request({"x": 2}), idempotency_key="k1")

    # Then the original job is untouched and nothing more was enqueued
    assert repo.jobs == [first.job]
    assert len(queue.sent) == 1


def test_idempotency_keys_are_scoped_per_owner(fakes: Fakes) -> None:
    service, repo, queue = fakes
    # When ann and bob both use the same key for the same body
    ann_job = service.submit(ANN, echo_request(), idempotency_key="shared").job
    bob_job = service.submit(BOB, echo_request(), idempotency_key="shared").job

    # Then each gets a job of their own
    assert ann_job.id != bob_job.id
    assert {(job.id, job.owner) for job in repo.jobs} == {
        (ann_job.id, ANN),
        (bob_job.id, BOB),
    }
    assert len(queue.sent) == 2


def test_an_expired_job_frees_its_idempotency_key(clock: FakeClock) -> None:
    # Given a job submitted with a key, cancelled, and kept for one day
    service, repo, queue = build_fake_service(clock=clock, retention=timedelta(days=1))
    first = service.submit(ANN, echo_request({"x": 1}), idempotency_key="k1").job
    service.cancel(ANN, first.id)

    # When the retention has passed and the key is used again with another body
    clock.advance(timedelta(days=2))
    second = service.submit(ANN, echo_request({"x": 2}), idempotency_key="k1")

    # Then a fresh job is created under the same id
    assert second.created is True
    assert second.job.id == first.id
    assert repo.jobs == [second.job]
    assert second.job.status is JobStatus.QUEUED
    assert len(queue.sent) == 2


def test_a_queue_outage_does_not_fail_a_submit_the_outbox_sends_later(
    fakes: Fakes,
) -> None:
    service, repo, queue = fakes
    # Given a queue that is down
    queue.fail_with = "ServiceUnavailable"

    # When a job is submitted, then it is stored: the submit's one write succeeded
    submitted = service.submit(ANN, echo_request(), idempotency_key="k1")
    assert submitted.created is True
    assert repo.jobs == [submitted.job]
    assert queue.sent == []

    # When the queue is back and the stream hands the write over again, the message is sent
    queue.fail_with = None
    assert repo.stream.redeliver() == 1
    assert [s.message.job_id for s in queue.sent] == [submitted.job.id]
    # And a replay with the key is the same job, sending nothing more
    again = service.submit(ANN, echo_request(), idempotency_key="k1")
    assert (again.created, again.job.id, len(queue.sent)) == (
        False,
        submitted.job.id,
        1,
    )


def test_a_store_that_does_not_answer_says_the_job_may_be_stored(fakes: Fakes) -> None:
    service, repo, _ = fakes
    # Given a store whose answer to the create is lost after the SDK's retries
    broken = StorageUnavailable("create: ReadTimeoutError")

    def lost_create(job: Job, now: datetime, *, token: str | None = None) -> None:
        raise broken

    repo.create = lost_create  # type: ignore[method-assign]

    # When a job is submitted, then the error names the job id it may have been stored under
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        service.submit(ANN, echo_request(), idempotency_key="k1")
    assert caught.value.job_id in caught.value.message
    assert "Idempotency-Key" in caught.value.message


# ------------------------------------------------------------------------ run_after


@pytest.mark.parametrize("delay", [0, 30, 900])
def test_run_after_is_when_the_first_delivery_is_due(fakes: Fakes, delay: int) -> None:
    service, _, queue = fakes
    job = service.submit(ANN, echo_request(delay_seconds=delay)).job
    assert (job.status, job.run_after) == (
        JobStatus.QUEUED,
        START + timedelta(seconds=delay),
    )
    assert queue.sent[0].delay_seconds == delay
