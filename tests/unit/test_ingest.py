"""Ingest over in-memory fakes: submissions from other systems are submitted like `POST /jobs`,
idempotent per message, and invalid ones are kept as `rejected` jobs, never lost."""

from __future__ import annotations

from datetime import datetime

import pytest
from jobline.errors import StorageUnavailable
from jobline.models import Job, JobStatus

from tests.support.builders import ANN, Fakes
from tests.support.jobfields import FINAL_STATUSES
from tests.support.services import build_fake_service

DEFAULT_OWNER = "ingest"


def test_a_valid_submission_is_submitted_and_enqueued(fakes: Fakes) -> None:
    # Given a submission naming its owner
    service, repo, queue = fakes
    submission = {"type": "echo", "payload": {"order": 42}, "owner": ANN}

    # When it is ingested
    submitted = service.ingest(
        submission, message_id="m-1", default_owner=DEFAULT_OWNER
    )

    # Then it is a queued job of that owner with one message, like POST /jobs
    assert submitted.created
    job = submitted.job
    assert (job.owner, job.type, job.status, job.payload) == (
        ANN,
        "echo",
        JobStatus.QUEUED,
        {"order": 42},
    )
    assert repo.jobs == [job]
    assert [sent.message.job_id for sent in queue.sent] == [job.id]


def test_the_same_message_again_is_a_replay_that_enqueues_nothing(fakes: Fakes) -> None:
    service, repo, queue = fakes
    submission = {"type": "echo", "payload": {"n": 1}}

    first = service.ingest(submission, message_id="m-1", default_owner=DEFAULT_OWNER)
    again = service.ingest(submission, message_id="m-1", default_owner=DEFAULT_OWNER)

    assert (first.created, again.created) == (True, False)
    assert again.job.id == first.job.id
    assert len(repo.jobs) == len(queue.sent) == 1
    assert first.job.owner == DEFAULT_OWNER


def test_an_idempotency_key_makes_two_messages_one_job(fakes: Fakes) -> None:
    service, repo, _ = fakes
    submission = {"type": "echo", "payload": {}, "idempotency_key": "order-7"}

    first = service.ingest(submission, message_id="m-1", default_owner=DEFAULT_OWNER)
    second = service.ingest(submission, message_id="m-2", default_owner=DEFAULT_OWNER)

    assert second.job.id == first.job.id and not second.created
    assert len(repo.jobs) == 1


@pytest.mark.parametrize(
    ("submission", "error_type", "reason"),
    [
        ({"type": "nope", "owner": ANN}, "UnknownJobType", "unknown job type 'nope'"),
        (
            {"type": "sleep", "payload": {"seconds": -1}, "owner": ANN},
            "InvalidPayload",
            "payload.seconds: Input should be greater than or equal to 0",
        ),
        ({"type": "echo", "owner": ANN, "extra": 1}, "InvalidSubmission", "extra: "),
        ("not json at all", "InvalidSubmission", "submission: "),
    ],
    ids=["unknown-type", "invalid-payload", "extra-field", "not-an-object"],
)
def test_an_invalid_submission_is_kept_as_a_rejected_job(
    fakes: Fakes, submission: object, error_type: str, reason: str
) -> None:
    service, repo, queue = fakes

    submitted = service.ingest(
        submission, message_id="m-9", default_owner=DEFAULT_OWNER
    )

    job = submitted.job
    assert job.status is JobStatus.REJECTED and job.status in FINAL_STATUSES
    assert job.error is not None and job.error.type == error_type
    assert reason in job.error.message
    assert job.expires_at is not None
    assert repo.jobs == [job]
    assert queue.sent == []
    # And a redelivery of the same message is rejected once, not twice
    again = service.ingest(submission, message_id="m-9", default_owner=DEFAULT_OWNER)
    assert (again.created, again.job.id, len(repo.jobs)) == (False, job.id, 1)


def test_a_rejected_payload_over_the_limit_is_not_kept() -> None:
    service, _, _ = build_fake_service(max_payload_bytes=64)
    submission = {"type": "nope", "payload": {"blob": "x" * 100}, "owner": ANN}

    job = service.ingest(submission, message_id="m-1", default_owner=DEFAULT_OWNER).job

    assert job.payload is None
    assert job.error is not None
    assert "payload not kept: over 64 bytes" in job.error.message


def test_a_queue_outage_stores_the_job_and_the_outbox_sends_later(fakes: Fakes) -> None:
    service, repo, queue = fakes
    queue.fail_with = "ServiceUnavailable"

    job = service.ingest(
        {"type": "echo"}, message_id="m-1", default_owner=DEFAULT_OWNER
    ).job

    assert repo.jobs == [job]
    queue.fail_with = None
    repo.stream.redeliver()
    assert [s.message.job_id for s in queue.sent] == [job.id]


def test_a_storage_outage_is_raised_for_the_message_to_come_back(fakes: Fakes) -> None:
    service, repo, _ = fakes

    def down(job: Job, now: datetime, *, token: str | None = None) -> None:
        raise StorageUnavailable("create: ThrottlingException")

    repo.create = down  # type: ignore[method-assign]

    with pytest.raises(StorageUnavailable):
        service.ingest({"type": "echo"}, message_id="m-1", default_owner=DEFAULT_OWNER)
