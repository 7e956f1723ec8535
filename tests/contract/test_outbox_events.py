"""Contract: the outbox's sample events go through the handlers template.yaml names.

`outbox_stream` is a batch of the jobs table's stream as the dispatcher receives it (an INSERT of
a queued job, the MODIFY of its claim, a TTL REMOVE); `outbox_failure` is a record of the
dispatcher's on-failure queue as the recovery receives it (where a given-up batch was, not the
records themselves). Each test runs under moto and asserts the exact outcome.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from jobline.aws.items import item_to_job
from jobline.models import JobMessage
from jobline_local.template import function_handler, load_template

from tests.conftest import FakeLambdaContext, MotoStack
from tests.support.events import load_event

TEMPLATE = load_template()


def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
    """Push an event through the handler the template names for `function`."""
    module_name, _, attribute = function_handler(TEMPLATE, function).rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    props = TEMPLATE["Resources"][function]["Properties"]
    context = FakeLambdaContext(
        timeout_s=float(props["Timeout"]), function_name=function
    )
    response: dict[str, Any] = handler(event, context)
    return response


def messages(stack: MotoStack) -> list[dict[str, Any]]:
    response = stack.sqs.receive_message(
        QueueUrl=stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    found: list[dict[str, Any]] = response.get("Messages", [])
    return found


def test_the_template_routes_the_stream_to_the_dispatcher() -> None:
    [function] = [
        name
        for name, resource in TEMPLATE["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        and any(
            event["Type"] == "DynamoDB"
            for event in resource["Properties"].get("Events", {}).values()
        )
    ]
    assert (
        function_handler(TEMPLATE, function) == "jobline_outbox.handler.lambda_handler"
    )


def test_the_stream_batch_sends_one_message_for_the_queued_job(
    moto_stack: MotoStack,
) -> None:
    # Given the sample stream batch: a submit's INSERT, its claim, a TTL removal
    event = load_event("outbox_stream")
    inserted = item_to_job(event["Records"][0]["dynamodb"]["NewImage"])

    # When the dispatcher handles it
    response = invoke("OutboxFunction", event)

    # Then every record is done with, and exactly one message names the inserted job
    assert response == {"batchItemFailures": []}
    [message] = messages(moto_stack)
    assert JobMessage.model_validate_json(message["Body"]) == JobMessage(
        job_id=inserted.id, owner=inserted.owner, job_type="echo", run=1
    )
    # (the sample's job was due in 2024: no delay is left)
    assert messages(moto_stack) == []


def test_a_queue_outage_names_the_records_to_hand_over_again(
    moto_stack: MotoStack,
) -> None:
    # Given the sample stream batch and a jobs queue that is gone
    event = load_event("outbox_stream")
    moto_stack.sqs.delete_queue(QueueUrl=moto_stack.queue_url)

    # When the dispatcher handles it
    response = invoke("OutboxFunction", event)

    # Then the insert's sequence number comes back: Lambda retries from there
    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}
        ]
    }


def test_a_given_up_batch_is_read_again_from_the_stream_and_dispatched(
    moto_stack: MotoStack,
) -> None:
    # Given a job stored through the API's path (its write is on the table's stream) ...
    event = load_event("outbox_stream")
    item = event["Records"][0]["dynamodb"]["NewImage"]
    moto_stack.dynamodb.put_item(TableName=moto_stack.table, Item=item)
    streams = moto_stack.streams
    stream_arn = moto_stack.provisioned.stream_arns["JobsTable"]
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"][
        "Shards"
    ][0]
    first = shard["SequenceNumberRange"]["StartingSequenceNumber"]
    # ... and the sample failure record, pointed at this stream's batch
    failure = load_event("outbox_failure")
    body = json.loads(failure["Records"][0]["body"])
    body["DDBStreamBatchInfo"].update(
        streamArn=stream_arn,
        shardId=shard["ShardId"],
        startSequenceNumber=first,
        endSequenceNumber=first,
    )
    failure["Records"][0]["body"] = json.dumps(body)

    # When the recovery handles it
    response = invoke("OutboxRecoveryFunction", failure)

    # Then the record is done with and the job's message was sent
    assert response == {"batchItemFailures": []}
    [message] = messages(moto_stack)
    assert json.loads(message["Body"])["job_id"] == item["id"]["S"]


def test_a_failure_record_that_names_no_batch_is_acknowledged(
    moto_stack: MotoStack,
) -> None:
    failure = load_event("outbox_failure")
    failure["Records"][0]["body"] = json.dumps({"not": "a failure record"})

    assert invoke("OutboxRecoveryFunction", failure) == {"batchItemFailures": []}
    assert messages(moto_stack) == []
