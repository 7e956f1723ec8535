"""Correlation ids end to end: the request's `X-Correlation-Id` is stored with the job, returned,
carried by its message as an attribute, and bound to the API's, the dispatcher's and the
worker's log lines for that job; an ingest message's id flows the same way."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline_api.app import create_app
from jobline_ingest.handler import lambda_handler as ingest_handler
from jobline_worker.handler import lambda_handler as worker_handler

from tests.conftest import FakeLambdaContext, MotoStack, sqs_event

ANN = {"X-Dev-User": "ann"}


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_callers_correlation_id_follows_the_job_through_every_function(
    moto_stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a submit that carries a correlation id
    with TestClient(create_app(allow_dev_identity=True)) as api:
        response = api.post(
            "/jobs",
            json={"type": "echo", "payload": {"n": 1}},
            headers={**ANN, "X-Correlation-Id": "order-42.checkout"},
        )
        job_id = response.json()["id"]

        # When the outbox sends its message and the worker runs it
        messages = moto_stack.receive()
        worker_handler(
            sqs_event(messages, moto_stack.provisioned.queue_arns["JobsQueue"]),
            FakeLambdaContext(),
        )
        done = api.get(f"/jobs/{job_id}", headers=ANN).json()

    # Then the id is the job's, the answer's header, the message's attribute
    assert response.headers["X-Correlation-Id"] == "order-42.checkout"
    assert done["status"] == "succeeded"
    assert done["correlation_id"] == "order-42.checkout"
    assert [
        m["MessageAttributes"]["correlation_id"]["StringValue"] for m in messages
    ] == ["order-42.checkout"]
    # And every function's lines about the job carry it
    lines = _lines(capsys.readouterr().out)
    by_event = {line["event"]: line for line in lines if line.get("job_id") == job_id}
    for event in ("job.submitted", "job.dispatched", "job.claimed", "job.succeeded"):
        assert by_event[event]["correlation_id"] == "order-42.checkout", event


@pytest.mark.parametrize("header", [None, "", "x" * 200, "bad id\nwith newline"])
def test_a_missing_or_unusable_id_is_replaced_by_a_new_one(
    moto_stack: MotoStack, header: str | None
) -> None:
    headers = dict(ANN)
    if header is not None:
        headers["X-Correlation-Id"] = header
    with TestClient(create_app(allow_dev_identity=True)) as api:
        response = api.post("/jobs", json={"type": "echo"}, headers=headers)

    given = response.headers["X-Correlation-Id"]
    assert given and given != header and len(given) == 32
    assert response.json()["correlation_id"] == given


def test_an_ingest_messages_correlation_id_is_the_jobs(moto_stack: MotoStack) -> None:
    # Given a submission on the ingest queue with a correlation id attribute
    ingest_url = moto_stack.provisioned.queue_urls["IngestQueue"]
    moto_stack.sqs.send_message(
        QueueUrl=ingest_url,
        MessageBody=json.dumps({"type": "echo", "owner": "ann"}),
        MessageAttributes={
            "Correlation-Id": {"DataType": "String", "StringValue": "erp-7"}
        },
    )
    messages = moto_stack.receive(ingest_url)

    # When the ingest function submits it
    ingest_handler(
        sqs_event(messages, moto_stack.provisioned.queue_arns["IngestQueue"]),
        FakeLambdaContext(timeout_s=30),
    )

    # Then the job carries it, and so does its message
    [item] = moto_stack.dynamodb.scan(TableName=moto_stack.table)["Items"]
    assert item["correlation_id"] == {"S": "erp-7"}
    [message] = moto_stack.receive()
    assert message["MessageAttributes"]["correlation_id"]["StringValue"] == "erp-7"
