"""The redrive command under moto: bounded, paced batches from a dead-letter queue back to its
queue; only what the target accepted is deleted; dead-lettered jobs are re-queued through the
service instead of being moved. Time is a fake clock that only moves when the command sleeps."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline import bootstrap
from jobline.aws.repository import DynamoJobRepository
from jobline.clock import utcnow
from jobline.config import get_settings
from jobline.limits import INLINE_DATA_BYTES
from jobline.models import Job, JobError, JobMessage, JobStatus
from jobline_api.app import create_app
from jobline_ops.environment import Environment
from jobline_ops.redrive import (
    Redrive,
    RedriveError,
    RedriveReport,
    build_redrive,
    main,
)

from tests.conftest import MotoStack

ANN = {"X-Dev-User": "ann"}


class FakeTime:
    """A clock that stands still until `sleep` moves it; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RecordingSqs:
    """The moto SQS client, recording batch sizes and failing the sends of chosen bodies."""

    def __init__(self, client: Any, fail_bodies: frozenset[str] = frozenset()) -> None:
        self._client = client
        self._fail = fail_bodies
        self.received: list[int] = []
        self.sent: list[int] = []
        self.deleted: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def receive_message(self, **request: Any) -> Any:
        response = self._client.receive_message(**request)
        self.received.append(len(response.get("Messages", [])))
        return response

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        self.sent.append(len(Entries))
        failing = [e for e in Entries if e["MessageBody"] in self._fail]
        passing = [e for e in Entries if e["MessageBody"] not in self._fail]
        response: dict[str, Any] = {"Successful": [], "Failed": []}
        if passing:
            response = dict(
                self._client.send_message_batch(QueueUrl=QueueUrl, Entries=passing)
            )
            response.setdefault("Failed", [])
        response["Failed"] = list(response["Failed"]) + [
            {
                "Id": entry["Id"],
                "SenderFault": False,
                "Code": "InternalError",
                "Message": "try again",
            }
            for entry in failing
        ]
        return response

    def delete_message_batch(self, **request: Any) -> Any:
        self.deleted.append(len(request["Entries"]))
        return self._client.delete_message_batch(**request)


# ---------------------------------------------------------------------------- helpers
@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


def fill_dlq(stack: MotoStack, count: int) -> list[str]:
    """`count` job messages on the jobs DLQ (no job behind them); their bodies, in order."""
    bodies = [
        json.dumps({"job_id": f"{index:032x}", "owner": "ann", "job_type": "echo"})
        for index in range(count)
    ]
    for start in range(0, count, 10):
        stack.sqs.send_message_batch(
            QueueUrl=stack.dlq_url,
            Entries=[
                {
                    "Id": str(index),
                    "MessageBody": body,
                    "MessageAttributes": {
                        "correlation_id": {
                            "DataType": "String",
                            "StringValue": f"req-{start + index}",
                        }
                    },
                }
                for index, body in enumerate(bodies[start : start + 10])
            ],
        )
    return bodies


def drain(stack: MotoStack, queue_url: str) -> list[dict[str, Any]]:
    """Every message visible on a queue (received, so hidden afterwards)."""
    messages: list[dict[str, Any]] = []
    while batch := stack.receive(queue_url):
        messages.extend(batch)
    return messages


def counts(stack: MotoStack, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def redrive_for(
    stack: MotoStack, sqs: Any, time_: FakeTime, out: io.StringIO, **kwargs: Any
) -> Redrive:
    """The command as `make redrive` builds it, on moto, with the fake clock."""
    env = Environment(
        sqs=sqs, settings=get_settings(), dynamodb=stack.dynamodb, s3=stack.s3
    )
    return build_redrive(
        env,
        kwargs.pop("source", None),
        kwargs.pop("target", None),
        out=out,
        sleep=time_.sleep,
        clock=time_.clock,
        **kwargs,
    )


# --------------------------------------------------------------------------- bounds
def test_it_moves_at_most_max_messages_in_batches_of_ten(
    moto_stack: MotoStack, time_: FakeTime
) -> None:
    # Given 25 messages on the jobs DLQ
    bodies = fill_dlq(moto_stack, 25)
    sqs = RecordingSqs(moto_stack.sqs)
    out = io.StringIO()

    # When at most 12 are redriven, at 100 messages a second
    report = redrive_for(moto_stack, sqs, time_, out).run(max_messages=12, rate=100)

    # Then 12 moved to the jobs queue in a batch of 10 and one of 2, and 13 are left
    assert report == RedriveReport(
        moved=12, requeued=0, failed=0, remaining=13, in_flight=0
    )
    assert (sqs.received, sqs.sent, sqs.deleted) == ([10, 2], [10, 2], [10, 2])
    moved = drain(moto_stack, moto_stack.queue_url)
    assert sorted(message["Body"] for message in moved) == sorted(bodies[:12])
    # And each kept its message attributes
    for message in moved:
        index = bodies.index(message["Body"])
        assert message["MessageAttributes"] == {
            "correlation_id": {"DataType": "String", "StringValue": f"req-{index}"}
        }
    # And it printed one line per message and a summary
    lines = out.getvalue().splitlines()
    assert len(lines) == 13
    assert all(line.startswith("moved    ") for line in lines[:12])
    assert lines[-1] == (
        f"redrive {moto_stack.dlq_url} -> {moto_stack.queue_url}: moved=12 requeued=0 "
        "failed=0 remaining~13 in_flight~0"
    )


def test_it_stops_when_the_dead_letter_queue_is_empty(
    moto_stack: MotoStack, time_: FakeTime
) -> None:
    # Given 3 messages on the jobs DLQ
    fill_dlq(moto_stack, 3)
    sqs = RecordingSqs(moto_stack.sqs)

    # When up to 100 are redriven
    report = redrive_for(moto_stack, sqs, time_, io.StringIO()).run(100, rate=10)

    # Then the 3 are moved and a last empty receive ends the run
    assert (report.moved, report.remaining) == (3, 0)
    assert sqs.received == [3, 0]
    assert counts(moto_stack, moto_stack.dlq_url) == (0, 0)


# ------------------------------------------------------------------------------ rate
def test_batches_are_paced_to_the_rate(moto_stack: MotoStack, time_: FakeTime) -> None:
    # Given 12 messages on the jobs DLQ
    fill_dlq(moto_stack, 12)
    sqs = RecordingSqs(moto_stack.sqs)

    # When they are redriven at 5 messages a second
    report = redrive_for(moto_stack, sqs, time_, io.StringIO()).run(100, rate=5)

    # Then they go in batches of at most 5, each sent only once the ones before fit the rate
    assert report.moved == 12
    assert sqs.sent == [5, 5, 2]
    assert time_.sleeps == [1.0, 1.0]


def test_a_rate_below_one_sends_one_message_at_a_time(
    moto_stack: MotoStack, time_: FakeTime
) -> None:
    # Given 3 messages on the jobs DLQ
    fill_dlq(moto_stack, 3)
    sqs = RecordingSqs(moto_stack.sqs)

    # When they are redriven at one message every two seconds
    redrive_for(moto_stack, sqs, time_, io.StringIO()).run(100, rate=0.5)

    # Then each goes alone, two seconds after the one before
    assert sqs.sent == [1, 1, 1]
    assert time_.sleeps == [2.0, 2.0]


@pytest.mark.parametrize(("max_messages", "rate"), [(0, 10.0), (10, 0.0), (10, -1.0)])
def test_a_bound_or_rate_that_is_not_positive_is_refused(
    moto_stack: MotoStack, time_: FakeTime, max_messages: int, rate: float
) -> None:
    redrive = redrive_for(moto_stack, moto_stack.sqs, time_, io.StringIO())
    with pytest.raises(ValueError):
        redrive.run(max_messages, rate)


# -------------------------------------------------------------------------- failures
def test_only_the_messages_the_target_accepted_are_deleted(
    moto_stack: MotoStack, time_: FakeTime
) -> None:
    # Given 6 messages on the jobs DLQ, two of which the target will refuse
    bodies = fill_dlq(moto_stack, 6)
    refused = frozenset({bodies[1], bodies[4]})
    sqs = RecordingSqs(moto_stack.sqs, fail_bodies=refused)
    out = io.StringIO()

    # When they are redriven
    report = redrive_for(moto_stack, sqs, time_, out).run(100, rate=100)

    # Then 4 moved and were deleted; the 2 refused stay in the DLQ (hidden until it times out)
    assert (report.moved, report.failed, report.remaining, report.in_flight) == (
        4,
        2,
        0,
        2,
    )
    assert sqs.deleted == [4]
    assert sorted(m["Body"] for m in drain(moto_stack, moto_stack.queue_url)) == sorted(
        set(bodies) - refused
    )
    assert counts(moto_stack, moto_stack.dlq_url) == (0, 2)
    failed_lines = [
        line for line in out.getvalue().splitlines() if line.startswith("failed")
    ]
    assert len(failed_lines) == 2
    assert all(line.endswith(": InternalError try again") for line in failed_lines)


# ---------------------------------------------------------------- dead-lettered jobs
@pytest.fixture
def api(moto_stack: MotoStack) -> Iterator[TestClient]:
    with TestClient(create_app(allow_dev_identity=True)) as client:
        yield client


def test_dead_lettered_jobs_are_requeued_through_the_service(
    moto_stack: MotoStack, api: TestClient, time_: FakeTime
) -> None:
    # Given a dead-lettered job, a queued job and a body that is no job message, all in the DLQ
    now = utcnow()
    repository = DynamoJobRepository(moto_stack.dynamodb, moto_stack.table)
    error = JobError(type="WorkerLost", message="gone")
    dead = Job(
        id="d" * 32,
        owner="ann",
        type="echo",
        status=JobStatus.DEAD_LETTERED,
        payload={"n": 1},
        error=error,
        attempts=3,
        created_at=now,
        updated_at=now,
        finished_at=now,
        expires_at=int(now.timestamp()) + 3600,
    )
    queued = dead.model_copy(
        update={
            "id": "e" * 32,
            "status": JobStatus.QUEUED,
            "finished_at": None,
            "expires_at": None,
        }
    )
    repository.create(dead, now)
    repository.create(queued, now)
    bodies = {
        job.id: json.dumps({"job_id": job.id, "owner": "ann", "job_type": "echo"})
        for job in (dead, queued)
    }
    for body in [*bodies.values(), "not a job message"]:
        moto_stack.sqs.send_message(QueueUrl=moto_stack.dlq_url, MessageBody=body)
    out = io.StringIO()

    # When the DLQ is redriven to the jobs queue
    report = redrive_for(moto_stack, moto_stack.sqs, time_, out).run(100, rate=100)

    # Then the dead-lettered job was re-queued (fresh budget), the other two messages moved
    assert report == RedriveReport(
        moved=2, requeued=1, failed=0, remaining=0, in_flight=0
    )
    job = api.get(f"/jobs/{dead.id}", headers=ANN).json()
    assert (job["status"], job["attempts"], job["error"]) == ("queued", 0, None)
    # And the jobs queue holds a fresh message for it, the queued job's and the stray body
    assert sorted(m["Body"] for m in drain(moto_stack, moto_stack.queue_url)) == sorted(
        [
            json.dumps(
                {"job_id": dead.id, "owner": "ann", "job_type": "echo", "run": 2}
            ).replace(" ", ""),
            bodies[queued.id],
            "not a job message",
        ]
    )
    # And the DLQ is empty, and the re-queue was printed
    assert counts(moto_stack, moto_stack.dlq_url) == (0, 0)
    (requeued_line,) = [
        line for line in out.getvalue().splitlines() if line.startswith("requeued")
    ]
    assert requeued_line.endswith(
        f"job={dead.id}: dead_lettered -> queued (fresh attempts, a new message)"
    )


def test_a_dead_lettered_job_keeps_its_large_payload_for_the_new_run(
    moto_stack: MotoStack, api: TestClient, time_: FakeTime
) -> None:
    # Given a dead-lettered job whose payload is in the data bucket
    payload = {"data": "x" * (INLINE_DATA_BYTES + 1)}
    submitted = api.post(
        "/jobs", json={"type": "echo", "payload": payload}, headers=ANN
    ).json()
    message = {"job_id": submitted["id"], "owner": "ann", "job_type": "echo"}
    drain(moto_stack, moto_stack.queue_url)
    service = bootstrap.get_service()
    assert service.dead_letter(JobMessage.model_validate(message), 25) is not None
    ref = service.get("ann", submitted["id"]).payload_ref
    assert ref is not None
    moto_stack.sqs.send_message(
        QueueUrl=moto_stack.dlq_url, MessageBody=json.dumps(message)
    )
    copies: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        copies.append(copy.deepcopy(params))  # as given (botocore rewrites CopySource)

    moto_stack.s3.meta.events.register("provide-client-params.s3.CopyObject", record)

    # When the DLQ is redriven
    report = redrive_for(moto_stack, moto_stack.sqs, time_, io.StringIO()).run(10, 100)

    # Then the job is queued again, its payload rewritten in place first (the lifecycle counts
    # from then), and whole
    assert report.requeued == 1
    assert [(c["Key"], c["CopySource"]["Key"]) for c in copies] == [(ref.key, ref.key)]
    again = moto_stack.s3.get_object(Bucket=moto_stack.bucket, Key=ref.key)
    assert json.loads(again["Body"].read()) == payload
    assert api.get(f"/jobs/{submitted['id']}", headers=ANN).json()["status"] == "queued"


def test_without_the_jobs_queue_as_target_nothing_goes_through_the_service(
    moto_stack: MotoStack, time_: FakeTime
) -> None:
    # Given the ingest DLQ named as the source, without a target
    source = moto_stack.provisioned.queue_urls["IngestDeadLetterQueue"]
    moto_stack.sqs.send_message(QueueUrl=source, MessageBody='{"type": "echo"}')

    # When the redrive is built and run
    redrive = redrive_for(
        moto_stack, moto_stack.sqs, time_, io.StringIO(), source=source
    )
    report = redrive.run(10, rate=10)

    # Then the target is the queue whose DLQ it is (the ingest queue) and the body moved there
    assert redrive.target_url == moto_stack.provisioned.queue_urls["IngestQueue"]
    assert report.moved == 1
    (message,) = drain(moto_stack, redrive.target_url)
    assert message["Body"] == '{"type": "echo"}'


# ------------------------------------------------------------------------- resolving
def test_by_default_the_jobs_dlq_goes_back_to_the_jobs_queue(
    moto_stack: MotoStack, time_: FakeTime
) -> None:
    # When the redrive is built with neither queue named
    redrive = redrive_for(moto_stack, moto_stack.sqs, time_, io.StringIO())

    # Then it moves the jobs queue's dead-letter queue (from its RedrivePolicy) to the jobs queue
    assert (redrive.source_url, redrive.target_url) == (
        moto_stack.dlq_url,
        moto_stack.queue_url,
    )


def test_queues_can_be_named_instead_of_given_as_urls(
    moto_stack: MotoStack, time_: FakeTime
) -> None:
    # When the redrive is built with queue names
    redrive = redrive_for(
        moto_stack,
        moto_stack.sqs,
        time_,
        io.StringIO(),
        source="jobline-test-IngestDeadLetterQueue",
        target="jobline-test-IngestQueue",
    )

    # Then they are resolved to their URLs
    assert (redrive.source_url, redrive.target_url) == (
        moto_stack.provisioned.queue_urls["IngestDeadLetterQueue"],
        moto_stack.provisioned.queue_urls["IngestQueue"],
    )


def test_a_target_without_a_dead_letter_queue_needs_a_source(
    moto_stack: MotoStack, time_: FakeTime
) -> None:
    # When the target named has no RedrivePolicy and no source is named
    # Then the redrive cannot be built
    with pytest.raises(RedriveError, match="has no dead-letter queue"):
        redrive_for(
            moto_stack, moto_stack.sqs, time_, io.StringIO(), target=moto_stack.dlq_url
        )


# ------------------------------------------------------------------------------ CLI
def test_the_command_line_redrives_and_prints_a_summary(
    moto_stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given 4 messages on the jobs DLQ and the JOBLINE_* settings of the stack
    fill_dlq(moto_stack, 4)
    bootstrap.reset()

    # When the command runs with a bound of 4 (so it never waits for an empty receive)
    code = main(["--max", "4", "--rate", "50"])

    # Then it succeeded, moved the 4, and printed them and the summary
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["moved"] * 4 + ["redrive"]
    assert lines[-1].endswith("moved=4 requeued=0 failed=0 remaining~0 in_flight~0")
    assert len(drain(moto_stack, moto_stack.queue_url)) == 4
