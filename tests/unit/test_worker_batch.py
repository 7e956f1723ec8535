"""The worker's batch loop over a fake service: exact batchItemFailures, isolation, log context."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import structlog
from jobline.backoff import Backoff
from jobline.errors import StorageUnavailable
from jobline.models import Job, JobStatus, SubmitRequest
from jobline.registry import JobContext
from jobline.service import JobService
from jobline.sqs_batch import Invocation
from structlog.testing import capture_logs

from tests.support.fakes import (
    START,
    AnyInput,
    CountingHandler,
    InMemoryJobQueue,
    InMemoryJobRepository,
    counting_job_type,
    failing_handler,
    job_type_of,
)
from tests.support.services import build_fake_service, build_registry, process_batch

ANN = "ann"
UNKNOWN_ID = "0" * 32
WAIT_S = 10.0
"""Upper bound of every wait in this file; a healthy run never comes near it."""


def _record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }


def _body(job_id: str, owner: str = ANN, job_type: str = "count") -> str:
    return f'{{"job_id": "{job_id}", "owner": "{owner}", "job_type": "{job_type}"}}'


LEASE = START + timedelta(minutes=15)
"""The invocation's Lambda deadline, on the fake clock of the service (which stays at START)."""


def _invocation(deadline: float | None = None) -> Invocation:
    return Invocation(
        request_id="req-batch",
        lease_until=LEASE,
        deadline=time.monotonic() + 60 if deadline is None else deadline,
    )


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-job") as pool:
        yield pool


class Batch:
    """A fake service with a counting job type and a failing one."""

    def __init__(self) -> None:
        self.ok = CountingHandler(result={"ok": True})
        self.failing = failing_handler("flaky")
        registry = build_registry(
            [
                counting_job_type("count", self.ok),
                counting_job_type("fail", self.failing),
            ]
        )
        self.service: JobService
        self.repo: InMemoryJobRepository
        self.queue: InMemoryJobQueue
        self.service, self.repo, self.queue = build_fake_service(registry)

    def submit(self, job_type: str = "count") -> Job:
        return self.service.submit(ANN, SubmitRequest(type=job_type)).job

    def status(self, job: Job) -> tuple[JobStatus, int]:
        stored = self.repo.get(job.id)
        assert stored is not None
        return stored.status, stored.attempts


@pytest.fixture
def batch() -> Batch:
    return Batch()


def test_a_mixed_batch_reports_exactly_the_records_to_retry(
    batch: Batch, executor: ThreadPoolExecutor
) -> None:
    # Given a good job, an already finished job, a failing job and three bad records
    good = batch.submit()
    finished = batch.submit()
    assert (
        process_batch(
            batch.service,
            [_record("m-first", _body(finished.id))],
            _invocation(),
            executor,
        )
        == []
    )
    failing = batch.submit("fail")
    records = [
        _record("m-good", _body(good.id)),
        _record("m-not-json", "{this is not json"),
        _record("m-no-owner", f'{{"job_id": "{good.id}"}}'),
        _record("m-unknown", _body(UNKNOWN_ID)),
        _record("m-failing", _body(failing.id, job_type="fail")),
        _record("m-duplicate", _body(finished.id)),
    ]

    # When the batch runs
    failures = process_batch(batch.service, records, _invocation(), executor)

    # Then exactly the malformed, unknown and retryable records go back, in batch order
    assert failures == ["m-not-json", "m-no-owner", "m-unknown", "m-failing"]
    assert batch.status(good) == (JobStatus.SUCCEEDED, 1)
    assert batch.status(finished) == (JobStatus.SUCCEEDED, 1)
    assert batch.status(failing) == (JobStatus.QUEUED, 1)
    assert (batch.ok.calls, batch.failing.calls) == (2, 1)
    # And the failed record's message is hidden for the backoff, through its receipt handle
    assert batch.queue.visibility == [
        ("handle-m-failing", Backoff().delay(1, random.Random(0)))
    ]
    # And each attempt is recorded with the invocation's request id
    stored = batch.repo.get(good.id)
    assert stored is not None
    assert [entry.request_id for entry in stored.history] == ["req-batch"]


@pytest.mark.parametrize(
    "body",
    ["", "null", "[]", '"text"', "{}", '{"job_id": "", "owner": "ann"}', "\x00"],
)
def test_malformed_bodies_are_returned(
    batch: Batch, executor: ThreadPoolExecutor, body: str
) -> None:
    assert process_batch(
        batch.service, [_record("m-1", body)], _invocation(), executor
    ) == ["m-1"]


def test_a_record_without_a_body_is_returned(
    batch: Batch, executor: ThreadPoolExecutor
) -> None:
    record = _record("m-1", "")
    del record["body"]
    assert process_batch(batch.service, [record], _invocation(), executor) == ["m-1"]


def test_the_same_message_twice_in_a_batch_runs_the_job_once(
    executor: ThreadPoolExecutor,
) -> None:
    # Given a job whose handler keeps running until the duplicate was answered
    batch = Batch()
    runs: list[str] = []

    def slow(payload: AnyInput, context: JobContext) -> dict[str, bool]:
        runs.append(context.job_id)
        end = time.monotonic() + WAIT_S
        while not batch.queue.visibility and time.monotonic() < end:
            time.sleep(0.005)
        return {"ok": True}

    batch.service.registry.register(job_type_of("slow", slow))
    job = batch.submit("slow")
    records = [
        _record("m-a", _body(job.id, job_type="slow")),
        _record("m-b", _body(job.id, job_type="slow")),
    ]

    # When both records of it (SQS at-least-once) run concurrently
    failures = process_batch(batch.service, records, _invocation(), executor)

    # Then the handler ran once; the record that found the job held goes back, hidden
    # until the holder's lease ends (15 minutes from now, plus a second)
    assert runs == [job.id]
    assert batch.status(job) == (JobStatus.SUCCEEDED, 1)
    assert len(failures) == 1
    assert batch.queue.visibility == [(f"handle-{failures[0]}", 15 * 60 + 1)]


def test_records_past_the_deadline_are_returned_unstarted(
    batch: Batch, executor: ThreadPoolExecutor
) -> None:
    # Given queued jobs and a deadline already past
    jobs = [batch.submit() for _ in range(3)]
    records = [_record(f"m-{i}", _body(job.id)) for i, job in enumerate(jobs)]

    # When the batch runs
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        failures = process_batch(
            batch.service, records, _invocation(time.monotonic() - 1), executor
        )

    # Then every record goes back and no job was touched
    assert failures == ["m-0", "m-1", "m-2"]
    assert batch.ok.calls == 0
    assert [batch.status(job) for job in jobs] == [(JobStatus.QUEUED, 0)] * 3
    assert sorted(
        entry["message_id"] for entry in logs if entry["event"] == "record.not_started"
    ) == ["m-0", "m-1", "m-2"]


def test_a_crashing_record_does_not_affect_the_others(
    batch: Batch, executor: ThreadPoolExecutor
) -> None:
    # Given a job whose storage throws an unexpected error, one whose storage is down,
    # and two good jobs
    crashing, unavailable = batch.submit(), batch.submit()
    good = [batch.submit(), batch.submit()]
    batch.repo.broken[crashing.id] = RuntimeError("driver bug")
    batch.repo.broken[unavailable.id] = StorageUnavailable("ThrottlingException")
    records = [
        _record("m-good-0", _body(good[0].id)),
        _record("m-crash", _body(crashing.id)),
        _record("m-unavailable", _body(unavailable.id)),
        _record("m-good-1", _body(good[1].id)),
    ]

    # When the batch runs
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        failures = process_batch(batch.service, records, _invocation(), executor)

    # Then only the broken records go back; the others finished
    assert failures == ["m-crash", "m-unavailable"]
    assert [batch.status(job) for job in good] == [(JobStatus.SUCCEEDED, 1)] * 2
    [crashed] = [entry for entry in logs if entry["event"] == "record.crashed"]
    assert (crashed["message_id"], crashed["job_id"], crashed["error_type"]) == (
        "m-crash",
        crashing.id,
        "RuntimeError",
    )
    # (the store being down, its record comes back soon: postponed, not after the whole
    # visibility timeout)
    [unavailable_line] = [
        entry for entry in logs if entry["event"] == "job.claim_unavailable"
    ]
    assert unavailable_line["message_id"] == "m-unavailable"
    assert ("handle-m-unavailable", 5) in batch.queue.visibility


def test_log_lines_carry_the_message_id_of_their_record(
    batch: Batch, executor: ThreadPoolExecutor
) -> None:
    # Given a malformed record, an unknown job and two good jobs run concurrently
    jobs = [batch.submit(), batch.submit()]
    records = [
        _record("m-bad", "not json at all"),
        _record("m-unknown", _body(UNKNOWN_ID)),
        *(_record(f"m-{job.id}", _body(job.id)) for job in jobs),
    ]

    # When the batch runs
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        process_batch(batch.service, records, _invocation(), executor)

    # Then the malformed record is logged with its message id and receive count
    [malformed] = [entry for entry in logs if entry["event"] == "record.malformed"]
    assert (malformed["message_id"], malformed["receive_count"]) == ("m-bad", "1")
    assert malformed["log_level"] == "error"
    assert malformed["errors"][0]["type"] == "json_invalid"
    [rejected] = [entry for entry in logs if entry["event"] == "record.rejected"]
    assert (rejected["message_id"], rejected["job_id"], rejected["error_type"]) == (
        "m-unknown",
        UNKNOWN_ID,
        "JobNotFound",
    )

    # And every job's lines carry its own record's message id, never another's (its INFO line:
    # the claim is a DEBUG line, its metrics ride on the outcome's)
    job_lines = [entry for entry in logs if entry["event"] == "job.succeeded"]
    assert len(job_lines) == 2
    assert all(entry["message_id"] == f"m-{entry['job_id']}" for entry in job_lines)
    assert all(entry["job_type"] == "count" for entry in job_lines)
