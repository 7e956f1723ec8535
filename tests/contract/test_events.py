"""Contract: every sample event in events/ goes through the handler template.yaml names for it.

The events are API Gateway HTTP API (payload 2.0) and SQS -> Lambda events as AWS delivers them;
each test seeds what its event refers to, under moto, and asserts the exact answer.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from jobline.aws.repository import DynamoJobRepository
from jobline.bootstrap import default_registry
from jobline.models import Job, JobStatus
from jobline_local.settings import LocalSettings
from jobline_local.template import (
    function_handler,
    load_template,
    provision,
    resources_of_type,
)
from moto import mock_aws

from tests.conftest import REGION, FakeLambdaContext, MotoStack
from tests.support.events import event_names, load_event
from tests.support.jobfields import (
    NO_DATA_LINKS,
    PUBLIC_FIELDS,
    SUMMARY_FIELDS,
    TIMESTAMPS,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

TEMPLATE = load_template()
API_EVENTS = event_names("api_")
WORKER_EVENTS = event_names("worker_")

OWNER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
"""The `sub` claim of every API event and the owner in every worker record."""
JOB_ID = "0f8e4c2a9b7d41e6a3c5d8f1b2e4a6c9"
"""The job id in the paths of api_get_job and api_cancel_job."""
CREATED = datetime(2024, 11, 26, 6, 50, 0, 250000, tzinfo=UTC)
FINISHED = datetime(2024, 11, 26, 6, 50, 3, 500000, tzinfo=UTC)


# ---------------------------------------------------------------------------- helpers
def function_for(event: dict[str, Any]) -> str:
    """The one template function with an event source that delivers `event`."""
    matches = set()
    for name, resource in resources_of_type(
        TEMPLATE, "AWS::Serverless::Function"
    ).items():
        for source in resource["Properties"].get("Events", {}).values():
            props = source["Properties"]
            if source["Type"] == "HttpApi" and "routeKey" in event:
                if event["routeKey"] == f"{props['Method']} {props['Path']}":
                    matches.add(name)
            elif source["Type"] == "SQS" and "Records" in event:
                queue = props["Queue"]["Fn::GetAtt"][0]
                if all(
                    queue in record["eventSourceARN"].rsplit(":", 1)[1].split("-")
                    for record in event["Records"]
                ):
                    matches.add(name)
    assert len(matches) == 1, f"event matches functions {sorted(matches)}"
    return matches.pop()


def handler_of(function: str) -> Handler:
    """The callable named by the function's `Handler` property, imported as Lambda would."""
    module_name, _, attribute = function_handler(TEMPLATE, function).rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


def context_of(function: str) -> FakeLambdaContext:
    """A Lambda context with the function's template timeout."""
    props = TEMPLATE["Resources"][function]["Properties"]
    return FakeLambdaContext(timeout_s=float(props["Timeout"]), function_name=function)


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    """Push an event through the handler of the function the template routes it to."""
    function = function_for(event)
    return handler_of(function)(event, context_of(function))


def body_of(response: dict[str, Any]) -> Any:
    """The JSON body of an API response, timestamps parsed (so they compare as instants)."""
    assert response["isBase64Encoded"] is False
    body = json.loads(response["body"])
    listing = isinstance(body, dict) and "items" in body
    jobs = body["items"] if listing else [body]
    for job in jobs:
        if isinstance(job, dict) and "created_at" in job:
            assert set(job) == set(SUMMARY_FIELDS if listing else PUBLIC_FIELDS)
            _parse_times(job, TIMESTAMPS)
            for entry in job.get("history", []):
                _parse_times(entry, ("started_at", "finished_at"))
            if job["progress"] is not None:
                _parse_times(job["progress"], ("updated_at",))
    return body


def _parse_times(fields: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if fields[name] is not None:
            fields[name] = datetime.fromisoformat(fields[name])


def repository(stack: MotoStack) -> DynamoJobRepository:
    """The table the functions use, through the production adapter."""
    return DynamoJobRepository(stack.dynamodb, stack.table)


def seed(stack: MotoStack, **fields: Any) -> Job:
    """Store a job directly (fixed id and timestamps), as if submitted earlier."""
    values: dict[str, Any] = {
        "id": JOB_ID,
        "owner": OWNER,
        "type": "echo",
        "status": JobStatus.QUEUED,
        "payload": {"message": "seeded"},
        "created_at": CREATED,
        "updated_at": CREATED,
        **fields,
    }
    job = Job(**values)
    repository(stack).create(job, CREATED)
    return job


def public(job: Job) -> dict[str, Any]:
    """What the API shows of a job (timestamps as datetimes, like `body_of`)."""
    shown = job.model_dump(include=set(PUBLIC_FIELDS))
    shown["history"] = list(shown["history"])
    return {**NO_DATA_LINKS, **shown}  # seeded jobs hold their data


def summary(job: Job) -> dict[str, Any]:
    """What a listing shows of a job (timestamps as datetimes, like `body_of`)."""
    return {
        **job.model_dump(include=set(SUMMARY_FIELDS)),
        "error_truncated": False,
    }


def stored(stack: MotoStack, job_id: str) -> Job:
    """The job as the table holds it now."""
    job = repository(stack).get(job_id)
    assert job is not None, f"job {job_id} is not stored"
    return job


# ------------------------------------------------------------------- event shapes
@pytest.mark.parametrize("name", API_EVENTS + WORKER_EVENTS)
def test_every_event_is_delivered_to_the_function_its_prefix_names(name: str) -> None:
    # Given a sample event
    event = load_event(name)

    # When the template's event sources are matched against it
    function = function_for(event)

    # Then api_* events reach the API function and worker_* events the worker
    assert function == ("ApiFunction" if name.startswith("api_") else "WorkerFunction")


@pytest.mark.parametrize("name", API_EVENTS)
def test_api_events_have_the_http_api_v2_shape_mangum_reads(name: str) -> None:
    # Given an API sample event
    event = load_event(name)
    context = event["requestContext"]
    stage = context["stage"]
    prefix = "" if stage == "$default" else f"/{stage}"

    # Then it is a payload 2.0 event with every key Mangum's HTTP API handler reads
    assert event["version"] == "2.0"
    assert isinstance(event["rawQueryString"], str)
    assert event["isBase64Encoded"] is False
    assert isinstance(event.get("body", ""), str)
    assert all(key == key.lower() for key in event["headers"])
    assert set(context["http"]) == {
        "method",
        "path",
        "protocol",
        "sourceIp",
        "userAgent",
    }
    assert context["routeKey"] == event["routeKey"]
    assert context["accountId"] == "123456789012"
    assert context["domainName"] == event["headers"]["host"]
    assert isinstance(context["timeEpoch"], int)
    # And the path carries the stage exactly as API Gateway does for a named stage
    assert context["http"]["path"] == event["rawPath"]
    assert event["rawPath"].startswith(f"{prefix}/")
    # And routes behind the JWT authorizer carry its claims; the health route has none
    if event["routeKey"] == "GET /health":
        assert "authorizer" not in context
    else:
        jwt = context["authorizer"]["jwt"]
        assert jwt["claims"]["sub"] == OWNER
        assert {"iss", "aud", "iat", "exp"} <= set(jwt["claims"])
        assert event["headers"]["authorization"].startswith("Bearer ")
    # And a body's content-length is its size
    if "body" in event:
        assert event["headers"]["content-length"] == str(len(event["body"].encode()))


def test_worker_event_records_are_job_messages_from_the_jobs_queue() -> None:
    # Given the worker sample event
    event = load_event("worker_sqs_batch")

    # Then each record is an SQS record whose body is a JobMessage with a matching MD5
    assert len(event["Records"]) == 2
    for record in event["Records"]:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].split(":")[5].split("-")[-2] == "JobsQueue"
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert set(json.loads(record["body"])) == {"job_id", "owner", "job_type"}


def test_env_file_names_what_make_run_provisions() -> None:
    # Given the env-vars file for `sam local invoke --env-vars events/env.json`
    env = load_event("env")
    defaults = LocalSettings.model_fields

    # When the local stack's resources are provisioned the way `make run` does
    with mock_aws():
        provisioned = provision(
            boto3.client("dynamodb", region_name=REGION),
            boto3.client("sqs", region_name=REGION),
            prefix=defaults["prefix"].default,
        )

    # Then the file configures exactly the template's functions
    assert set(env) == set(resources_of_type(TEMPLATE, "AWS::Serverless::Function"))
    for variables in env.values():
        # And points them at the local moto server and the table and queue it created there
        endpoint = urlsplit(variables["AWS_ENDPOINT_URL"])
        assert endpoint.port == defaults["moto_port"].default
        assert variables["JOBLINE_TABLE_NAME"] == provisioned.tables["JobsTable"]
        queue_url = urlsplit(variables["JOBLINE_QUEUE_URL"])
        assert queue_url.netloc == endpoint.netloc
        assert queue_url.path == urlsplit(provisioned.queue_urls["JobsQueue"]).path
        assert all(isinstance(value, str) for value in variables.values())


# ------------------------------------------------------------------------ API events
def test_health(moto_stack: MotoStack) -> None:
    # Given the health check event (no authorizer on this route)
    event = load_event("api_health")

    # When the API function handles it
    response = invoke(event)

    # Then it answers 200 ok as JSON
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    assert body_of(response) == {"status": "ok"}


def test_job_types_lists_the_builtin_types_with_their_input_schemas(
    moto_stack: MotoStack,
) -> None:
    # Given the job types event
    event = load_event("api_job_types")

    # When the API function handles it
    response = invoke(event)

    # Then it lists every type the deployment discovered (the examples among them), each with
    # its input's JSON schema
    assert response["statusCode"] == 200
    body = body_of(response)
    assert [job_type["name"] for job_type in body] == default_registry().names()
    by_name = {job_type["name"]: job_type for job_type in body}
    echo, http_request, sleep = (
        by_name[name] for name in ("echo", "http.request", "sleep")
    )
    assert echo == {
        "name": "echo",
        "description": "Returns its payload (any JSON object) as the result.",
        "input_schema": {
            "additionalProperties": True,
            "description": "Any JSON object.",
            "title": "EchoInput",
            "type": "object",
        },
    }
    assert http_request["input_schema"]["required"] == ["url"]
    assert set(http_request["input_schema"]["properties"]) == {
        "url",
        "method",
        "headers",
        "body",
        "timeout_s",
    }
    assert sleep["input_schema"]["required"] == ["seconds"]
    assert set(sleep["input_schema"]["properties"]) == {"seconds"}


def test_submit_is_accepted_and_its_replay_returns_the_same_job(
    moto_stack: MotoStack,
) -> None:
    # Given the submit event (an echo job with an Idempotency-Key header)
    event = load_event("api_submit_job")
    key = event["headers"]["idempotency-key"]
    job_id = hashlib.sha256(f"{OWNER}\x00{key}".encode()).hexdigest()[:32]

    # When the API function handles it
    first = invoke(event)

    # Then the job is accepted: 202, its Location, the queued job as the body
    assert first["statusCode"] == 202
    assert first["headers"]["location"] == f"/jobs/{job_id}"
    job = stored(moto_stack, job_id)
    assert body_of(first) == {
        "id": job_id,
        "type": "echo",
        "status": "queued",
        "payload": {"message": "hello from events/", "n": 3},
        **NO_DATA_LINKS,
        "result": None,
        "error": None,
        "run": 1,
        "attempts": 0,
        "max_attempts": 3,
        "created_at": job.created_at,
        "updated_at": job.created_at,
        "started_at": None,
        "finished_at": None,
        "run_after": job.created_at,
        "cancel_requested_at": None,
        "progress": None,
        "history": [],
        "correlation_id": "req-7f3c2a91-checkout",
    }
    assert first["headers"]["x-correlation-id"] == "req-7f3c2a91-checkout"
    # And one message naming the job is on the queue, its correlation id an attribute
    messages = moto_stack.receive()
    assert [json.loads(message["Body"]) for message in messages] == [
        {"job_id": job_id, "owner": OWNER, "job_type": "echo", "run": 1}
    ]
    assert [
        message["MessageAttributes"]["correlation_id"]["StringValue"]
        for message in messages
    ] == ["req-7f3c2a91-checkout"]

    # When the same event is delivered again
    replay = invoke(load_event("api_submit_job"))

    # Then it is an idempotent replay: 200, the same job, nothing more enqueued
    assert replay["statusCode"] == 200
    assert replay["headers"]["location"] == f"/jobs/{job_id}"
    assert body_of(replay) == public(job)
    assert (
        moto_stack.sqs.get_queue_attributes(
            QueueUrl=moto_stack.queue_url,
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )


def test_submit_behind_a_named_stage_answers_with_the_stage_in_location(
    moto_stack: MotoStack,
) -> None:
    # Given the submit event of a `v1` stage (rawPath /v1/jobs)
    event = load_event("api_submit_job_named_stage")
    key = event["headers"]["idempotency-key"]
    job_id = hashlib.sha256(f"{OWNER}\x00{key}".encode()).hexdigest()[:32]

    # When the API function handles it
    response = invoke(event)

    # Then the route matches without the stage, and Location keeps it
    assert response["statusCode"] == 202
    assert response["headers"]["location"] == f"/v1/jobs/{job_id}"
    assert body_of(response) == public(stored(moto_stack, job_id))


def test_get_returns_the_callers_job(moto_stack: MotoStack) -> None:
    # Given the caller's queued job with the event's id
    job = seed(moto_stack)

    # When the get event is handled
    response = invoke(load_event("api_get_job"))

    # Then the job is returned as stored
    assert response["statusCode"] == 200
    assert body_of(response) == {
        "id": JOB_ID,
        "type": "echo",
        "status": "queued",
        "payload": {"message": "seeded"},
        **NO_DATA_LINKS,
        "result": None,
        "error": None,
        "run": 1,
        "attempts": 0,
        "max_attempts": 3,
        "created_at": CREATED,
        "updated_at": CREATED,
        "started_at": None,
        "finished_at": None,
        "run_after": None,
        "cancel_requested_at": None,
        "progress": None,
        "history": [],
        "correlation_id": None,
    }
    assert body_of(response) == public(job)


def test_get_of_another_owners_job_is_not_found(moto_stack: MotoStack) -> None:
    # Given a job with the event's id that belongs to someone else
    seed(moto_stack, owner="someone-else")

    # When the caller's get event is handled
    response = invoke(load_event("api_get_job"))

    # Then it is 404, exactly like an unknown id
    assert response["statusCode"] == 404
    assert body_of(response) == {"detail": f"job '{JOB_ID}' not found"}


def test_list_returns_the_callers_jobs_with_the_requested_status(
    moto_stack: MotoStack,
) -> None:
    # Given a succeeded job and a queued job of the caller, and a succeeded job of someone else
    done = seed(
        moto_stack,
        status=JobStatus.SUCCEEDED,
        result={"message": "seeded"},
        attempts=1,
        started_at=CREATED,
        finished_at=FINISHED,
        updated_at=FINISHED,
    )
    seed(moto_stack, id="1" * 32)
    seed(moto_stack, id="2" * 32, owner="someone-else", status=JobStatus.SUCCEEDED)

    # When the list event (status=succeeded&limit=5) is handled
    response = invoke(load_event("api_list_jobs"))

    # Then only the caller's succeeded job is listed, with no further page
    assert response["statusCode"] == 200
    assert body_of(response) == {"items": [summary(done)], "next_cursor": None}


def test_cancel_cancels_the_callers_queued_job(moto_stack: MotoStack) -> None:
    # Given the caller's queued job with the event's id
    seed(moto_stack)

    # When the cancel event is handled
    response = invoke(load_event("api_cancel_job"))

    # Then the job is cancelled and the answer is the job as now stored
    assert response["statusCode"] == 200
    job = stored(moto_stack, JOB_ID)
    assert job.status is JobStatus.CANCELLED
    assert job.finished_at is not None
    assert body_of(response) == public(job)
    assert body_of(response)["status"] == "cancelled"


def test_a_request_without_jwt_claims_is_unauthenticated(
    moto_stack: MotoStack,
) -> None:
    # Given the submit event without the authorizer's claims (development identity is off)
    event = load_event("api_submit_job")
    del event["requestContext"]["authorizer"]

    # When the API function handles it
    response = invoke(event)

    # Then it is 401 with a Bearer challenge, and nothing is enqueued
    assert response["statusCode"] == 401
    assert response["headers"]["www-authenticate"] == "Bearer"
    assert body_of(response) == {"detail": "authentication required"}
    assert moto_stack.receive() == []


# --------------------------------------------------------------------- worker events
def worker_jobs(event: dict[str, Any]) -> list[str]:
    """The job ids of the worker event's records, in order."""
    return [json.loads(record["body"])["job_id"] for record in event["Records"]]


def test_worker_batch_runs_every_job(moto_stack: MotoStack) -> None:
    # Given the caller's queued echo jobs named by the batch's records
    event = load_event("worker_sqs_batch")
    job_ids = worker_jobs(event)
    for job_id in job_ids:
        seed(moto_stack, id=job_id, payload={"job": job_id})

    # When the worker function handles the batch
    result = invoke(event)

    # Then no record is returned to the queue and every job succeeded with its payload
    assert result == {"batchItemFailures": []}
    for job_id in job_ids:
        job = stored(moto_stack, job_id)
        assert (job.status, job.attempts, job.result) == (
            JobStatus.SUCCEEDED,
            1,
            {"job": job_id},
        )
        assert [(entry.attempt, entry.error) for entry in job.history] == [(1, None)]


def test_worker_reports_a_record_for_an_unknown_job(moto_stack: MotoStack) -> None:
    # Given only the first record's job exists
    event = load_event("worker_sqs_batch")
    known, unknown = worker_jobs(event)
    seed(moto_stack, id=known)

    # When the worker function handles the batch
    result = invoke(event)

    # Then exactly the unknown job's record is reported for redelivery
    assert result == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]
    }
    assert stored(moto_stack, known).status is JobStatus.SUCCEEDED
    assert repository(moto_stack).get(unknown) is None
