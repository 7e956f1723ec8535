"""AWS calls per job: what one echo job costs, counted on the functions' own clients.

The count is botocore's `before-call` event on `bootstrap.dynamodb_client()` and `sqs_client()`:
one per API operation (retries are not counted twice). The event source mapping's receive and
delete are not the functions' calls: the test receives with its own client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline import bootstrap
from jobline_api.app import create_app
from jobline_worker.handler import lambda_handler

from tests.conftest import FakeLambdaContext, MotoStack, sqs_event

DEV_USER = {"X-Dev-User": "ann"}


class CallLog:
    """The operations the functions' clients made, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def record(self, event_name: str, **_: Any) -> None:
        self.calls.append(event_name.removeprefix("before-call."))

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def calls(moto_stack: MotoStack) -> Iterator[CallLog]:
    """Count every call of the functions' DynamoDB and SQS clients."""
    log = CallLog()
    clients = [bootstrap.dynamodb_client(), bootstrap.sqs_client()]
    for client in clients:
        client.meta.events.register("before-call", log.record)
    yield log
    for client in clients:
        client.meta.events.unregister("before-call", log.record)


def _status(moto_stack: MotoStack, job_id: str) -> str:
    item = moto_stack.dynamodb.get_item(
        TableName=moto_stack.table, Key={"id": {"S": job_id}}, ConsistentRead=True
    )["Item"]
    status: str = item["status"]["S"]
    return status


def _submit_echo(calls: CallLog) -> str:
    with TestClient(create_app(allow_dev_identity=True)) as client:
        calls.take()  # nothing before the request counts
        response = client.post(
            "/jobs", json={"type": "echo", "payload": {"n": 1}}, headers=DEV_USER
        )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def test_an_echo_job_costs_four_calls_from_submit_to_success(
    moto_stack: MotoStack, calls: CallLog
) -> None:
    # Given the API app and the worker handler on the template's resources
    arn = moto_stack.provisioned.queue_arns["JobsQueue"]

    # When an echo job is submitted through the API
    job_id = _submit_echo(calls)
    submitted = calls.take()

    # And the outbox sends its message (the stream hands the write to the dispatcher)
    assert moto_stack.dispatch() == 1
    dispatched = calls.take()

    # And the worker runs the message the event source mapping received
    event = sqs_event(moto_stack.receive(), arn)
    result = lambda_handler(event, FakeLambdaContext())
    ran = calls.take()

    # Then the job succeeded for four calls: store, enqueue (one entry of a batch), claim and
    # finish
    assert result == {"batchItemFailures": []}
    assert _status(moto_stack, job_id) == "succeeded"
    assert submitted == ["dynamodb.PutItem"]
    assert dispatched == ["sqs.SendMessageBatch"]
    assert ran == ["dynamodb.UpdateItem", "dynamodb.UpdateItem"]
    assert len(submitted + dispatched + ran) <= 4


def test_a_duplicate_delivery_of_a_finished_job_costs_one_call(
    moto_stack: MotoStack, calls: CallLog
) -> None:
    # Given an echo job the worker already ran to success
    arn = moto_stack.provisioned.queue_arns["JobsQueue"]
    job_id = _submit_echo(calls)
    event = sqs_event(moto_stack.receive(), arn)
    assert lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    calls.take()

    # When SQS delivers the same message again
    result = lambda_handler(event, FakeLambdaContext())

    # Then the record is acknowledged after one call (the claim that finds it finished)
    assert result == {"batchItemFailures": []}
    assert calls.take() == ["dynamodb.UpdateItem"]
    assert _status(moto_stack, job_id) == "succeeded"
