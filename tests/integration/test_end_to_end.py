"""End to end under moto: jobs submitted through the API app, run by the worker's Lambda handler on
messages received from the template's queue, read back through the API and from the table."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline.clock import utcnow
from jobline.models import JobMessage
from jobline_api.app import create_app
from jobline_worker.handler import lambda_handler

from tests.conftest import FakeLambdaContext, MotoStack, sqs_event

ANN = {"X-Dev-User": "ann"}
BOB = {"X-Dev-User": "bob"}
RECEIVE_ROUNDS = 5
"""Receive calls allowed to collect the messages a test expects (moto answers at once)."""


@pytest.fixture
def client(moto_stack: MotoStack) -> Iterator[TestClient]:
    with TestClient(create_app(allow_dev_identity=True)) as test_client:
        yield test_client


def submit(
    client: TestClient, body: dict[str, Any], headers: dict[str, str] = ANN
) -> str:
    response = client.post("/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def get_job(client: TestClient, job_id: str, headers: dict[str, str] = ANN) -> Any:
    response = client.get(f"/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def receive_exactly(moto_stack: MotoStack, count: int) -> list[dict[str, Any]]:
    """The `count` messages now visible on the jobs queue, and no more."""
    messages: list[dict[str, Any]] = []
    for _ in range(RECEIVE_ROUNDS):
        if len(messages) >= count:
            break
        messages.extend(moto_stack.receive())
    assert len(messages) == count, messages
    assert moto_stack.receive() == []
    return messages


def job_id_of(message: dict[str, Any]) -> str:
    return JobMessage.model_validate_json(message["Body"]).job_id


def run_worker(moto_stack: MotoStack, messages: list[dict[str, Any]]) -> Any:
    """Deliver messages to the worker's Lambda handler as one SQS batch."""
    event = sqs_event(messages, moto_stack.provisioned.queue_arns["JobsQueue"])
    return lambda_handler(event, FakeLambdaContext())


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def raw_item(moto_stack: MotoStack, job_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = moto_stack.dynamodb.get_item(
        TableName=moto_stack.table, Key={"id": {"S": job_id}}, ConsistentRead=True
    ).get("Item")
    return item


def closed_loopback_port() -> int:
    """A loopback port nothing listens on: bound to get a free one, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_echo_job_goes_from_queued_to_succeeded(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given a submitted echo job
    job_id = submit(client, {"type": "echo", "payload": {"x": 0.1, "big": 10**25}})
    queued = get_job(client, job_id)
    assert (queued["status"], queued["attempts"]) == ("queued", 0)
    assert (queued["started_at"], queued["finished_at"]) == (None, None)

    # When the worker handles its message
    messages = receive_exactly(moto_stack, 1)
    assert job_id_of(messages[0]) == job_id
    result = run_worker(moto_stack, messages)

    # Then the message is acknowledged and the job succeeded on its first attempt
    assert result == {"batchItemFailures": []}
    job = get_job(client, job_id)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 1
    assert job["result"] == {"x": 0.1, "big": 10**25}
    assert job["error"] is None
    assert job["created_at"] == queued["created_at"]
    assert ts(job["created_at"]) <= ts(job["started_at"]) <= ts(job["finished_at"])
    assert job["updated_at"] == job["finished_at"]
    assert ts(job["updated_at"]) > ts(queued["updated_at"])


def test_failing_http_job_is_retried_then_fails_and_is_acknowledged(
    loopback_targets: None,
    moto_stack: MotoStack,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an http.request job aimed at a closed loopback port, allowed two attempts
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(
            name, "*"
        )  # straight to loopback, whatever proxy is configured
    url = f"http://127.0.0.1:{closed_loopback_port()}/"
    job_id = submit(
        client,
        {
            "type": "http.request",
            "payload": {"url": url, "timeout_s": 1},
            "max_attempts": 2,
        },
    )
    first = receive_exactly(moto_stack, 1)

    # When the worker handles the first delivery
    result = run_worker(moto_stack, first)

    # Then the message is returned for redelivery and the job is queued again with its error
    assert result == {"batchItemFailures": [{"itemIdentifier": first[0]["MessageId"]}]}
    job = get_job(client, job_id)
    assert (job["status"], job["attempts"], job["finished_at"]) == ("queued", 1, None)
    assert job["error"]["type"] == "HttpNetworkError"
    assert job["error"]["message"].startswith(f"GET {url} failed: ")

    # When SQS redelivers it once the backoff is over (the message is made visible at once
    # here; the job itself is due at its run_after)
    due = datetime.fromisoformat(job["run_after"])
    time.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.05)
    moto_stack.sqs.change_message_visibility(
        QueueUrl=moto_stack.queue_url,
        ReceiptHandle=first[0]["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    second = receive_exactly(moto_stack, 1)
    assert second[0]["MessageId"] == first[0]["MessageId"]
    assert second[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    result = run_worker(moto_stack, second)

    # Then the job failed for good and the message is acknowledged
    assert result == {"batchItemFailures": []}
    job = get_job(client, job_id)
    assert (job["status"], job["attempts"], job["result"]) == ("failed", 2, None)
    assert set(job["error"]) == {"type", "message"}
    assert job["error"]["type"] == "HttpNetworkError"
    assert job["error"]["message"].startswith(f"GET {url} failed: ")
    assert job["finished_at"] is not None


def test_a_batch_reports_exactly_its_bad_records(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given a good job message, a body that is not JSON and a message for an unknown job
    good_id = submit(client, {"type": "echo", "payload": {"ok": True}})
    moto_stack.sqs.send_message(QueueUrl=moto_stack.queue_url, MessageBody="not json")
    unknown = JobMessage(job_id="f" * 32, owner="ann", job_type="echo")
    moto_stack.sqs.send_message(
        QueueUrl=moto_stack.queue_url, MessageBody=unknown.model_dump_json()
    )
    messages = receive_exactly(moto_stack, 3)
    good = [
        m for m in messages if m["Body"].startswith("{") and job_id_of(m) == good_id
    ]
    assert len(good) == 1

    # When the worker handles them as one batch
    result = run_worker(moto_stack, messages)

    # Then exactly the two bad records are reported, in batch order, and the good job succeeded
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": m["MessageId"]} for m in messages if m is not good[0]
        ]
    }
    assert get_job(client, good_id)["status"] == "succeeded"
    assert raw_item(moto_stack, unknown.job_id) is None


def test_a_job_cancelled_while_queued_is_acknowledged_and_never_run(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given a queued job, cancelled before the worker sees it
    job_id = submit(client, {"type": "echo", "payload": {"n": 1}})
    cancelled = client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

    # When the worker handles its message
    result = run_worker(moto_stack, receive_exactly(moto_stack, 1))

    # Then the message is acknowledged and the job never ran
    assert result == {"batchItemFailures": []}
    job = get_job(client, job_id)
    assert job == cancelled.json()
    assert (job["status"], job["attempts"]) == ("cancelled", 0)
    assert (job["started_at"], job["result"]) == (None, None)


def test_listing_by_status_pages_newest_first(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given five jobs: three succeeded, one cancelled, one still queued
    ids = [submit(client, {"type": "echo", "payload": {"i": i}}) for i in range(5)]
    assert client.post(f"/jobs/{ids[2]}/cancel", headers=ANN).status_code == 200
    messages = receive_exactly(moto_stack, 5)
    to_run = [m for m in messages if job_id_of(m) in {ids[0], ids[1], ids[3]}]
    assert run_worker(moto_stack, to_run) == {"batchItemFailures": []}

    # When ann lists the succeeded jobs two at a time
    first = client.get("/jobs", params={"status": "succeeded", "limit": 2}, headers=ANN)
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert isinstance(cursor, str)
    second = client.get(
        "/jobs",
        params={"status": "succeeded", "limit": 2, "cursor": cursor},
        headers=ANN,
    )
    assert second.status_code == 200, second.text

    # Then the pages hold exactly the succeeded jobs, newest first, and the last page ends the list
    assert [j["id"] for j in first.json()["items"]] == [ids[3], ids[1]]
    assert [j["id"] for j in second.json()["items"]] == [ids[0]]
    assert second.json()["next_cursor"] is None
    assert {j["status"] for j in first.json()["items"] + second.json()["items"]} == {
        "succeeded"
    }

    # And the unfiltered listing has every job, newest first, in its current status
    everything = client.get("/jobs", params={"limit": 100}, headers=ANN).json()
    assert [(j["id"], j["status"]) for j in everything["items"]] == [
        (ids[4], "queued"),
        (ids[3], "succeeded"),
        (ids[2], "cancelled"),
        (ids[1], "succeeded"),
        (ids[0], "succeeded"),
    ]
    assert everything["next_cursor"] is None


def test_another_owners_job_is_invisible(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given a queued job of ann
    job_id = submit(client, {"type": "echo", "payload": {}}, headers=ANN)
    not_found = {"detail": f"job {job_id!r} not found"}

    # When bob reads, cancels and lists
    read = client.get(f"/jobs/{job_id}", headers=BOB)
    cancel = client.post(f"/jobs/{job_id}/cancel", headers=BOB)
    listed = client.get("/jobs", headers=BOB)
    listed_queued = client.get("/jobs", params={"status": "queued"}, headers=BOB)

    # Then the job does not exist for bob, and his cancel changed nothing
    assert (read.status_code, read.json()) == (404, not_found)
    assert (cancel.status_code, cancel.json()) == (404, not_found)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert listed_queued.json() == {"items": [], "next_cursor": None}
    assert get_job(client, job_id)["status"] == "queued"


def test_a_finished_job_expires_after_the_retention_period(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given a job that ran to success and a job cancelled while queued
    succeeded_id = submit(client, {"type": "echo", "payload": {}})
    run_worker(moto_stack, receive_exactly(moto_stack, 1))
    cancelled_id = submit(client, {"type": "echo", "payload": {}})
    assert client.post(f"/jobs/{cancelled_id}/cancel", headers=ANN).status_code == 200

    for job_id in (succeeded_id, cancelled_id):
        # When its item is read from the table
        item = raw_item(moto_stack, job_id)
        assert item is not None

        # Then it expires 30 days (the default retention) after it finished
        finished_at = ts(item["finished_at"]["S"])
        expected = int((finished_at + timedelta(days=30)).timestamp())
        assert item["expires_at"] == {"N": str(expected)}
        assert ts(get_job(client, job_id)["finished_at"]) == finished_at


def test_a_job_past_its_expiry_is_gone_before_ttl_deletes_it(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given a succeeded job whose expiry has passed, its item not yet deleted by TTL
    job_id = submit(client, {"type": "echo", "payload": {}})
    run_worker(moto_stack, receive_exactly(moto_stack, 1))
    moto_stack.dynamodb.update_item(
        TableName=moto_stack.table,
        Key={"id": {"S": job_id}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 10)}},
    )

    # When ann reads, cancels and lists it
    read = client.get(f"/jobs/{job_id}", headers=ANN)
    cancel = client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    listed = client.get("/jobs", headers=ANN)
    listed_succeeded = client.get("/jobs", params={"status": "succeeded"}, headers=ANN)

    # Then it is not found anywhere through the API, though the item is still stored
    not_found = {"detail": f"job {job_id!r} not found"}
    assert (read.status_code, read.json()) == (404, not_found)
    assert (cancel.status_code, cancel.json()) == (404, not_found)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert listed_succeeded.json() == {"items": [], "next_cursor": None}
    item = raw_item(moto_stack, job_id)
    assert item is not None
    assert json.loads(item["result"]["S"]) == {}
