"""The local stack of `make run`: the real HTTP port end to end, and the poller's Lambda semantics."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from jobline_local.poller import (
    InvalidBatchResponse,
    LambdaContext,
    SqsPoller,
    batch_item_failures,
    mapping_concurrency,
)
from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack, LocalStackError
from jobline_local.template import (
    Provisioned,
    SqsTrigger,
    function_environment,
    load_template,
    sqs_triggers,
)

from tests.conftest import REGION, MotoStack

FINAL_STATUSES = {"succeeded", "failed", "cancelled"}


def wait_for(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy or the time is up; return its last value."""
    deadline = time.monotonic() + timeout_s
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.05)
        value = check()
    return value


def queue_counts(sqs: Any, queue_url: str) -> tuple[str, str]:
    """(visible, in flight) message counts of a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ],
    )["Attributes"]
    return (
        attributes["ApproximateNumberOfMessages"],
        attributes["ApproximateNumberOfMessagesNotVisible"],
    )


def stack_settings(**changes: Any) -> LocalSettings:
    """Settings of a whole stack on free loopback ports, keeping no state."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "api_port": 0,
        "moto_port": 0,
        "prefix": f"jobline-it-{uuid.uuid4().hex[:8]}",
        "poll_wait_seconds": 1,
        "shutdown_timeout_seconds": 5,
        "state_file": None,
    }
    return LocalSettings(**(values | changes))


@pytest.fixture
def local_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The whole stack on free loopback ports; the environment it sets is undone by monkeypatch."""
    with LocalStack(stack_settings(), set_env=monkeypatch.setenv) as stack:
        yield stack


def job_of(client: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
    return job


def test_echo_job_submitted_over_http_is_run_by_the_poller(
    local_stack: LocalStack,
) -> None:
    # Given the running stack and a caller using the development identity
    with httpx.Client(
        base_url=local_stack.api_url, headers={"X-Dev-User": "alice"}, timeout=5
    ) as client:
        # When the caller submits an echo job to the real HTTP port
        submitted = client.post(
            "/jobs", json={"type": "echo", "payload": {"hello": "world"}}
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]

        # Then the poller runs it through the worker handler and the job succeeds
        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
            return job if job["status"] in FINAL_STATUSES else None

        job = wait_for(finished)
        assert job is not None
        assert job["status"] == "succeeded"
        assert job["result"] == {"hello": "world"}
        assert job["attempts"] == 1
        assert job["error"] is None

        # And another caller does not see it
        other = client.get(f"/jobs/{job_id}", headers={"X-Dev-User": "bob"})
        assert other.status_code == 404

    # And its message was deleted from the queue
    counts = wait_for(
        lambda: queue_counts(local_stack.sqs, local_stack.queue_url) == ("0", "0")
    )
    assert counts is True


def test_every_sqs_trigger_is_served_and_an_ingest_message_becomes_a_job(
    local_stack: LocalStack,
) -> None:
    # Given the running stack: a mapping per SQS trigger of the template (both lanes' queues and
    # both their dead-letter queues), one per stream; a
    # queue's runs up to 4 invocations at once (the local default) but never more than its
    # MaximumConcurrency (2 for the dead-letter consumer and the outbox recovery), the stream's
    # one (a shard's batches in order)
    assert sorted(
        (
            poller.trigger.function,
            poller.trigger.queue
            if isinstance(poller.trigger, SqsTrigger)
            else poller.trigger.table,
            poller.concurrency,
        )
        for poller in local_stack.pollers
    ) == [
        ("DeadLetterFunction", "JobsDeadLetterQueue", 2),
        ("DeadLetterFunction", "LongJobsDeadLetterQueue", 2),
        ("IngestFunction", "IngestQueue", 4),
        ("LongWorkerFunction", "LongJobsQueue", 4),
        ("OutboxFunction", "JobsTable", 1),
        ("OutboxRecoveryFunction", "OutboxFailureQueue", 2),
        ("WorkerFunction", "JobsQueue", 4),
    ]

    # When another system sends a submission to the ingest queue
    local_stack.sqs.send_message(
        QueueUrl=local_stack.provisioned.queue_urls["IngestQueue"],
        MessageBody='{"type": "echo", "payload": {"from": "ingest"}, "owner": "alice", '
        '"idempotency_key": "local-1"}',
    )

    # Then the ingest poller submits it and the worker poller runs it to success
    job_id = hashlib.sha256(b"alice\x00local-1").hexdigest()[:32]
    with httpx.Client(
        base_url=local_stack.api_url, headers={"X-Dev-User": "alice"}, timeout=5
    ) as client:

        def finished() -> dict[str, Any] | None:
            response = client.get(f"/jobs/{job_id}")
            job: dict[str, Any] = response.json()
            ok = response.status_code == 200 and job["status"] in FINAL_STATUSES
            return job if ok else None

        job = wait_for(finished)
    assert job is not None
    assert (job["status"], job["result"]) == ("succeeded", {"from": "ingest"})


def test_a_long_job_holds_back_only_its_own_invocation(
    local_stack: LocalStack,
) -> None:
    """Lambda runs a queue's batches in concurrent invocations, scaling its pollers out up to the
    event source's MaximumConcurrency ("five concurrent invocations" at first:
    docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html); so does the local stack."""
    with httpx.Client(
        base_url=local_stack.api_url, headers={"X-Dev-User": "alice"}, timeout=5
    ) as client:
        # Given a minute-long sleep job, running
        sleeper = client.post(
            "/jobs", json={"type": "sleep", "payload": {"seconds": 60}}
        ).json()["id"]
        assert wait_for(lambda: job_of(client, sleeper)["status"] == "running")

        # When fifteen echo jobs are submitted behind it
        echoes = [
            client.post("/jobs", json={"type": "echo", "payload": {"n": n}}).json()[
                "id"
            ]
            for n in range(15)
        ]

        # Then every one of them succeeds while the sleep job is still running: its invocation
        # holds back nothing but itself (one poller would not receive again before it returns)
        def all_succeeded() -> list[dict[str, Any]] | None:
            jobs = [job_of(client, job_id) for job_id in echoes]
            return jobs if all(job["status"] == "succeeded" for job in jobs) else None

        assert wait_for(all_succeeded, timeout_s=30) is not None
        still = job_of(client, sleeper)
        assert (still["status"], still["finished_at"]) == ("running", None)

        # (And cancelled, it stops at its next checkpoint)
        assert client.post(f"/jobs/{sleeper}/cancel").status_code == 202
        assert wait_for(lambda: job_of(client, sleeper)["status"] == "cancelled")


def test_a_stack_with_one_invocation_at_a_time_runs_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a stack whose SQS mappings run one invocation at a time
    settings = stack_settings(sqs_concurrency=1)
    with LocalStack(settings, set_env=monkeypatch.setenv) as stack:
        assert {
            poller.concurrency
            for poller in stack.pollers
            if isinstance(poller, SqsPoller)
        } == {1}
        with httpx.Client(
            base_url=stack.api_url, headers={"X-Dev-User": "alice"}, timeout=5
        ) as client:
            # When three echo jobs are submitted
            ids = [
                client.post("/jobs", json={"type": "echo", "payload": {"n": n}}).json()[
                    "id"
                ]
                for n in range(3)
            ]

            # Then each succeeds
            def statuses() -> list[str] | None:
                found = [job_of(client, job_id)["status"] for job_id in ids]
                return found if set(found) == {"succeeded"} else None

            assert wait_for(statuses) == ["succeeded"] * 3


@pytest.mark.parametrize(
    ("maximum", "local", "expected"), [(None, 4, 4), (2, 4, 2), (50, 4, 4), (2, 1, 1)]
)
def test_a_mapping_runs_the_local_limit_never_above_its_maximum_concurrency(
    maximum: int | None, local: int, expected: int
) -> None:
    trigger = worker_trigger(maximum_concurrency=maximum)
    assert mapping_concurrency(trigger, local) == expected


def test_the_template_declares_each_sqs_event_sources_maximum_concurrency() -> None:
    # Given the template's SQS triggers, their MaximumConcurrency resolved to the parameters'
    # defaults (a local run deploys with those)
    assert {
        trigger.function: trigger.maximum_concurrency
        for trigger in sqs_triggers(load_template())
    } == {
        "WorkerFunction": 50,
        "LongWorkerFunction": 10,
        "IngestFunction": 10,
        "DeadLetterFunction": 2,
        "OutboxRecoveryFunction": 2,
    }


@pytest.mark.parametrize(
    ("port_field", "setting"),
    [("api_port", "JOBLINE_LOCAL_API_PORT"), ("moto_port", "JOBLINE_LOCAL_MOTO_PORT")],
)
def test_a_port_in_use_names_the_setting_that_moves_it(
    monkeypatch: pytest.MonkeyPatch, port_field: str, setting: str
) -> None:
    # Given a port something else listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When the stack is told to listen there
        with pytest.raises(LocalStackError) as failure:
            LocalStack(
                stack_settings(**{port_field: port}), set_env=monkeypatch.setenv
            ).start()

    # Then the error says which variable moves it
    assert str(failure.value) == (
        f"cannot listen on 127.0.0.1:{port}: Address already in use; "
        f"set {setting} to another port (0 picks a free one)"
    )


# ---- the poller's event source mapping semantics, with stub handlers under in-process moto ----


class Recorder:
    """Calls a stub handler and keeps every event and context it was given."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        self.handler = handler
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        return self.handler(event, context)


def fail_body_b(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Reports the record whose body is "b" as failed."""
    return {
        "batchItemFailures": [
            {"itemIdentifier": record["messageId"]}
            for record in event["Records"]
            if record["body"] == "b"
        ]
    }


def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A handler that fails its invocation."""
    raise RuntimeError("handler crashed")


def worker_trigger(**changes: Any) -> SqsTrigger:
    """The worker's SQS trigger as template.yaml declares it, optionally changed."""
    (trigger,) = [
        trigger
        for trigger in sqs_triggers(load_template())
        if trigger.function == "WorkerFunction"
    ]
    return dataclasses.replace(trigger, **changes)


def send(moto_stack: MotoStack, *bodies: str) -> dict[str, str]:
    """Send one message per body; body -> message id."""
    return {
        body: moto_stack.sqs.send_message(
            QueueUrl=moto_stack.queue_url,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )["MessageId"]
        for body in bodies
    }


def poller_for(
    moto_stack: MotoStack,
    handler: Callable[[dict[str, Any], Any], Any],
    concurrency: int = 1,
    **changes: Any,
) -> SqsPoller:
    return SqsPoller(
        worker_trigger(**changes),
        handler,
        moto_stack.sqs,
        moto_stack.queue_url,
        moto_stack.provisioned.queue_arns["JobsQueue"],
        region=REGION,
        function_name="jobline-test-WorkerFunction",
        wait_time_s=0,
        concurrency=concurrency,
    )


def redeliver(moto_stack: MotoStack, receipt_handles: list[str]) -> list[str]:
    """Make in-flight messages visible at once and receive them again; their bodies, sorted."""
    for handle in receipt_handles:
        moto_stack.sqs.change_message_visibility(
            QueueUrl=moto_stack.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
        )
    return sorted(message["Body"] for message in moto_stack.receive())


def test_poller_deletes_all_but_the_reported_failure(moto_stack: MotoStack) -> None:
    # Given three messages and a handler reporting the one with body "b" as failed
    ids = send(moto_stack, "a", "b", "c")
    handler = Recorder(fail_body_b)
    poller = poller_for(moto_stack, handler)

    # When the poller runs one batch
    outcome = poller.poll_once()

    # Then the handler got all three in one invocation, and only "a" and "c" were deleted
    assert len(handler.events) == 1
    assert sorted(outcome.received) == sorted(ids.values())
    assert sorted(outcome.deleted) == sorted([ids["a"], ids["c"]])
    assert outcome.error is None
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("0", "1")

    # And the failed message is still on the queue, delivered again when visible
    records = {record["body"]: record for record in handler.events[0]["Records"]}
    assert redeliver(moto_stack, [records["b"]["receiptHandle"]]) == ["b"]


def test_poller_builds_lambda_shaped_records_and_context(
    moto_stack: MotoStack,
) -> None:
    # Given one message with a message attribute
    ids = send(moto_stack, '{"hello": "world"}')
    handler = Recorder(lambda event, context: {"batchItemFailures": []})

    # When the poller runs one batch
    poller_for(moto_stack, handler).poll_once()

    # Then the record has Lambda's SQS record shape
    (record,) = handler.events[0]["Records"]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["messageId"] == ids['{"hello": "world"}']
    assert record["body"] == '{"hello": "world"}'
    assert record["md5OfBody"] == hashlib.md5(b'{"hello": "world"}').hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == moto_stack.provisioned.queue_arns["JobsQueue"]
    assert record["awsRegion"] == REGION
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {
        "kind": {
            "stringValue": "test",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    }
    # And the context is Lambda's, counting down from the template's worker timeout (120 s)
    (context,) = handler.contexts
    assert isinstance(context, LambdaContext)
    assert context.function_name == "jobline-test-WorkerFunction"
    assert context.aws_request_id
    assert 0 < context.get_remaining_time_in_millis() <= 120_000


def test_poller_deletes_nothing_when_the_handler_raises(moto_stack: MotoStack) -> None:
    # Given three messages and a handler that raises
    send(moto_stack, "a", "b", "c")
    handler = Recorder(crash)

    # When the poller runs one batch
    outcome = poller_for(moto_stack, handler).poll_once()

    # Then nothing was deleted: the whole batch is in flight, and comes back when visible
    assert len(outcome.received) == 3
    assert outcome.deleted == []
    assert outcome.error == "RuntimeError: handler crashed"
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("0", "3")
    handles = [record["receiptHandle"] for record in handler.events[0]["Records"]]
    assert redeliver(moto_stack, handles) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "response",
    [
        "ok",
        ["a"],
        {"batchItemFailures": "everything"},
        {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "a"}]},
        {"batchItemFailures": ["a"]},
    ],
)
def test_malformed_partial_batch_responses_are_rejected(response: Any) -> None:
    # Given a batch of messages "a" and "b"
    # When the handler's response is malformed
    # Then it cannot be read as a partial batch response (Lambda fails the whole batch)
    with pytest.raises(InvalidBatchResponse):
        batch_item_failures(response, {"a", "b"})


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        (
            {"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]},
            {"a", "b"},
        ),
    ],
)
def test_partial_batch_responses_name_the_failed_messages(
    response: Any, failed: set[str]
) -> None:
    # Given a batch of messages "a" and "b"
    # When the handler's response is a valid partial batch response
    # Then exactly the listed messages failed (none for an empty or null response)
    assert batch_item_failures(response, {"a", "b"}) == failed


def test_poller_fails_the_whole_batch_on_a_malformed_response(
    moto_stack: MotoStack,
) -> None:
    # Given two messages and a handler naming a message that is not in the batch
    send(moto_stack, "a", "b")
    response = {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}

    # When the poller runs one batch
    outcome = poller_for(moto_stack, lambda event, context: response).poll_once()

    # Then nothing was deleted
    assert len(outcome.received) == 2
    assert outcome.deleted == []
    assert outcome.error == (
        "invalid batch response: itemIdentifier 'not-in-this-batch' is not in the batch"
    )
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("0", "2")


def test_poller_fails_the_whole_batch_on_a_response_that_is_not_json(
    moto_stack: MotoStack,
) -> None:
    # Given a message and a handler returning something Lambda cannot serialise
    send(moto_stack, "a")

    # When the poller runs one batch
    outcome = poller_for(moto_stack, lambda event, context: {"x": object()}).poll_once()

    # Then nothing was deleted
    assert outcome.deleted == []
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("0", "1")


def test_poller_deletes_the_whole_batch_on_an_empty_response(
    moto_stack: MotoStack,
) -> None:
    # Given two messages and a handler reporting no failures
    ids = send(moto_stack, "a", "b")

    # When the poller runs one batch and the handler returns nothing
    outcome = poller_for(moto_stack, lambda event, context: None).poll_once()

    # Then both were deleted
    assert sorted(outcome.deleted) == sorted(ids.values())
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("0", "0")


def test_poller_without_report_batch_item_failures_deletes_all_on_return(
    moto_stack: MotoStack,
) -> None:
    # Given a trigger without ReportBatchItemFailures and a handler reporting "b" as failed
    ids = send(moto_stack, "a", "b")
    poller = poller_for(moto_stack, fail_body_b, report_batch_item_failures=False)

    # When the poller runs one batch
    outcome = poller.poll_once()

    # Then the response is ignored: the invocation succeeded, so both were deleted
    assert sorted(outcome.deleted) == sorted(ids.values())
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("0", "0")


def test_poller_receives_at_most_batch_size_messages(moto_stack: MotoStack) -> None:
    # Given three messages and a trigger with a batch size of two
    send(moto_stack, "a", "b", "c")
    handler = Recorder(lambda event, context: None)
    poller = poller_for(moto_stack, handler, batch_size=2)

    # When the poller runs two batches
    first = poller.poll_once()
    second = poller.poll_once()

    # Then the first invocation got two records and the second the last one
    assert [len(event["Records"]) for event in handler.events] == [2, 1]
    assert (len(first.deleted), len(second.deleted)) == (2, 1)
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("0", "0")


class Overlap:
    """A stub handler counting the invocations that run at once; an invocation whose batch holds
    the message "long" waits until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.long_started = threading.Event()
        self.finished: list[str] = []
        """Bodies, in the order their invocations returned."""
        self.request_ids: list[str] = []
        self.most = 0
        self._active = 0
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        bodies = [record["body"] for record in event["Records"]]
        with self._lock:
            self._active += 1
            self.most = max(self.most, self._active)
            self.request_ids.append(context.aws_request_id)
        try:
            if "long" in bodies:
                self.long_started.set()
                self.release.wait(30)
        finally:
            with self._lock:
                self._active -= 1
                self.finished.extend(bodies)

    def done(self, *bodies: str) -> bool:
        with self._lock:
            return set(bodies) <= set(self.finished)


SHORT = tuple(f"short-{n}" for n in range(6))


def test_pollers_run_invocations_concurrently(moto_stack: MotoStack) -> None:
    # Given a mapping of one message per batch and four pollers, and an invocation holding
    # the message "long"
    handler = Overlap()
    poller = poller_for(moto_stack, handler, concurrency=4, batch_size=1)
    send(moto_stack, "long")
    poller.start()
    try:
        assert handler.long_started.wait(10)

        # When six more messages arrive
        send(moto_stack, *SHORT)

        # Then the other pollers run them while the long invocation still runs, each in an
        # invocation of its own (its own request id)
        assert wait_for(lambda: handler.done(*SHORT))
        assert "long" not in handler.finished
        assert handler.most >= 2
    finally:
        handler.release.set()
        assert poller.stop(10)
    assert handler.done("long", *SHORT)
    assert len(set(handler.request_ids)) == len(handler.request_ids) == 7
    # And every message was deleted once its invocation succeeded
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("0", "0")


def test_one_poller_runs_one_invocation_at_a_time(moto_stack: MotoStack) -> None:
    # Given a mapping of one message per batch and one poller, and an invocation holding the
    # message "long"
    handler = Overlap()
    poller = poller_for(moto_stack, handler, batch_size=1)
    send(moto_stack, "long")
    poller.start()
    try:
        assert handler.long_started.wait(10)

        # When more messages arrive and the long invocation returns
        send(moto_stack, *SHORT)
        handler.release.set()

        # Then they are run after it, one invocation at a time
        assert wait_for(lambda: handler.done(*SHORT))
    finally:
        handler.release.set()
        assert poller.stop(10)
    assert handler.finished[0] == "long"
    assert sorted(handler.finished[1:]) == sorted(SHORT)
    assert handler.most == 1
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("0", "0")


def test_a_poller_that_is_stopped_receives_nothing_more(moto_stack: MotoStack) -> None:
    # Given a mapping with four pollers, stopped
    handler = Recorder(lambda event, context: None)
    poller = poller_for(moto_stack, handler, concurrency=4)
    poller.start()
    assert poller.stop(10)

    # When a message arrives
    send(moto_stack, "late")

    # Then no poller receives it
    assert poller.poll_once().received == []
    assert handler.events == []
    assert queue_counts(moto_stack.sqs, moto_stack.queue_url) == ("1", "0")


def test_function_environment_resolves_the_template_to_local_resources() -> None:
    # Given the template and local names for its table and queues
    provisioned = Provisioned(
        tables={"JobsTable": "local-table"},
        queue_urls={
            "JobsQueue": "http://127.0.0.1:1/q",
            "JobsDeadLetterQueue": "http://127.0.0.1:1/dlq",
        },
        queue_arns={},
        buckets={"JobDataBucket": "local-data"},
    )

    # When the API function's environment is resolved
    environment = function_environment(load_template(), provisioned, "ApiFunction")

    # Then refs become the local names, parameters their defaults, and the cursor key's SSM
    # parameter name (a !Sub of the stack name) is left out: locally the key is the setting's
    # own (empty here, so the development key off Lambda)
    assert environment == {
        "JOBLINE_TABLE_NAME": "local-table",
        "JOBLINE_QUEUE_URL": "http://127.0.0.1:1/q",
        "JOBLINE_RETENTION_DAYS": "30",
        "JOBLINE_DATA_BUCKET": "local-data",
        "JOBLINE_DATA_EXPIRATION_DAYS": "46",
        "JOBLINE_LOG_LEVEL": "INFO",
        "JOBLINE_WORKER_TIMEOUT_S": "120",
        "JOBLINE_LONG_WORKER_TIMEOUT_S": "900",
        "AWS_ENDPOINT_URL": "",
        "JOBLINE_CURSOR_SECRET": "",
        "JOBLINE_ALLOW_DEV_IDENTITY": "false",
    }
