"""Large payloads and results on moto, through the handlers template.yaml names: the data bucket
built from the template, the API function's upload forms and links, the worker's reads and
writes; then the whole of `make run`'s stack (moto server, the API on a port, the template's event
source mappings) with the real client and the `jobline` command moving a 4 MB payload and a 30 MB
result through presigned URLs."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jobline import bootstrap
from jobline.aws.items import item_to_job
from jobline.aws.repository import DynamoJobRepository
from jobline.limits import DYNAMODB_MAX_ITEM_BYTES, MAX_REQUEST_BODY_BYTES
from jobline.models import Job, JobStatus
from jobline.usecases.claim_check import result_key
from jobline.validation import canonical_json
from jobline_client import Client
from jobline_client.cli import main
from jobline_local.poller import import_handler
from jobline_local.stack import LocalStack
from jobline_local.template import function_handler, load_template

from bench.cost import item_size
from tests.conftest import FakeLambdaContext, MotoStack, sqs_event
from tests.integration.test_local_stack import stack_settings
from tests.support.events import http_api_event
from tests.support.fakes import START
from tests.support.largest import largest, largest_fields

TEMPLATE = load_template()
OWNER = "ann"
MIB = 1024 * 1024
BULK_TYPES = "tests.support.bulk"
"""The module declaring `bulk` (tests.support.bulk), as a deployment names its own."""

Invoke = Callable[..., dict[str, Any]]


@pytest.fixture
def api(moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Invoke the API function's handler, as the HTTP API does, with `bulk` deployed."""
    monkeypatch.setenv("JOBLINE_JOB_TYPE_MODULES", BULK_TYPES)
    bootstrap.reset()
    handler = import_handler(function_handler(TEMPLATE, "ApiFunction"))

    def invoke(method: str, path: str, body: Any = None, status: int = 200) -> Any:
        raw = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        event = http_api_event(
            method,
            path,
            body=None if raw is None else raw.decode(),
            headers={"content-type": "application/json"},
            sub=OWNER,
        )
        response = handler(event, FakeLambdaContext())
        assert response["statusCode"] == status, response.get("body", "")[:500]
        return json.loads(response["body"]) if response.get("body") else None

    return invoke


def run_worker(moto_stack: MotoStack) -> dict[str, Any]:
    """Deliver the queued messages to the worker function's handler."""
    handler = import_handler(function_handler(TEMPLATE, "WorkerFunction"))
    messages = moto_stack.receive()
    assert messages
    event = sqs_event(messages, moto_stack.provisioned.queue_arns["JobsQueue"])
    answer: dict[str, Any] = handler(event, FakeLambdaContext())
    return answer


def stored(moto_stack: MotoStack, key: str) -> bytes:
    data: bytes = moto_stack.s3.get_object(Bucket=moto_stack.bucket, Key=key)[
        "Body"
    ].read()
    return data


def test_the_data_bucket_is_built_from_the_template(moto_stack: MotoStack) -> None:
    bucket = moto_stack.bucket
    encryption = moto_stack.s3.get_bucket_encryption(Bucket=bucket)
    [rule] = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = moto_stack.s3.get_public_access_block(Bucket=bucket)
    assert all(block["PublicAccessBlockConfiguration"].values())
    rules = moto_stack.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    days = {rule["ID"]: rule.get("Expiration", {}).get("Days") for rule in rules}
    default = TEMPLATE["Parameters"]["DataExpirationDays"]["Default"]
    assert days == {
        "payloads": default,
        "results": default,
        "uploads": 1,
        "incomplete-uploads": None,
    }


def test_an_uploaded_payload_and_a_large_result_through_the_template_handlers(
    moto_stack: MotoStack, api: Invoke
) -> None:
    # Given a 3 MB payload uploaded with the form the API function signs (the upload itself
    # goes to S3, here straight to moto's bucket under the form's key)
    payload: dict[str, Any] = {"blob": "b" * 3 * MIB, "result_bytes": 2 * MIB}
    form = api("POST", "/uploads", status=201)
    assert form["fields"]["key"].startswith("uploads/")
    moto_stack.s3.put_object(
        Bucket=moto_stack.bucket,
        Key=form["fields"]["key"],
        Body=json.dumps(payload).encode(),
    )

    # When it is submitted by its upload id and the worker function runs it
    submitted = api(
        "POST",
        "/jobs",
        {"type": "bulk", "payload_upload": form["upload_id"]},
        status=202,
    )
    assert run_worker(moto_stack) == {"batchItemFailures": []}

    # Then the item holds references, not the data, and stays small
    item = moto_stack.dynamodb.get_item(
        TableName=moto_stack.table, Key={"id": {"S": submitted["id"]}}
    )["Item"]
    job = item_to_job(item)
    assert job.status.value == "succeeded"
    assert job.payload is None and job.result is None
    assert job.payload_ref is not None and job.result_ref is not None
    assert len(json.dumps(item)) < 8 * 1024
    # And the bucket holds the payload (canonical) and the result (under the attempt's claim)
    assert stored(moto_stack, job.payload_ref.key) == canonical_json(payload).encode()
    result = json.loads(stored(moto_stack, job.result_ref.key))
    assert result["blob_sha256"] == hashlib.sha256(payload["blob"].encode()).hexdigest()
    assert len(result["data"]) == 2 * MIB
    lease = job.history[-1].token
    assert lease is not None and job.result_ref.key == result_key(job.id, lease)

    # And the API function answers links to both, with their sizes and digests
    shown = api("GET", f"/jobs/{job.id}")
    assert shown["payload"] is None and shown["result"] is None
    assert moto_stack.bucket in shown["result_url"]
    assert "X-Amz-Signature=" in shown["result_url"]
    assert (shown["result_size"], shown["result_sha256"]) == (
        job.result_ref.size,
        job.result_ref.sha256,
    )


def test_a_body_over_1_mib_is_refused_by_the_api_function(
    moto_stack: MotoStack, api: Invoke
) -> None:
    body = {"type": "bulk", "payload": {"blob": "b" * MAX_REQUEST_BODY_BYTES}}

    refused = api("POST", "/jobs", body, status=413)

    assert "POST /uploads" in refused["detail"]
    assert moto_stack.s3.list_objects_v2(Bucket=moto_stack.bucket)["KeyCount"] == 0


@pytest.mark.parametrize("character", ["a", "\U0001f600"])
def test_the_largest_legal_job_is_stored_by_dynamodb(
    moto_stack: MotoStack, character: str
) -> None:
    # Given the largest job the bounds allow (tests.support.largest)
    repository = DynamoJobRepository(bootstrap.dynamodb_client(), moto_stack.table)
    job = Job(
        **largest_fields(character),
        status=JobStatus.QUEUED,
        payload={},
        created_at=START,
        updated_at=START,
    )
    biggest = largest(job, character, JobStatus.FAILED)

    # When the repository writes it (moto refuses an item over 400 KB, as DynamoDB does)
    repository.create(biggest, START)

    # Then it is stored whole, and its item is what the size rules measured
    assert repository.get(biggest.id) == biggest
    item = moto_stack.dynamodb.get_item(
        TableName=moto_stack.table, Key={"id": {"S": biggest.id}}
    )["Item"]
    assert item_size(item) <= DYNAMODB_MAX_ITEM_BYTES


# ----------------------------------------------------------------------- make run, for real


@pytest.fixture
def local_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """`make run`'s stack on free ports with `bulk` deployed."""
    monkeypatch.setenv("JOBLINE_JOB_TYPE_MODULES", BULK_TYPES)
    with LocalStack(stack_settings(), set_env=monkeypatch.setenv) as stack:
        yield stack


def test_a_4_mb_payload_and_a_30_mb_result_round_trip_through_the_cli_and_the_client(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    # Given a 4 MB payload asking for a 30 MB result, in a file
    payload = {"blob": "b" * 4 * MIB, "result_bytes": 30 * MIB}
    source = tmp_path / "payload.json"
    source.write_text(json.dumps(payload), encoding="utf-8")
    environ = {"JOBLINE_API_URL": local_stack.api_url, "JOBLINE_DEV_USER": OWNER}

    def jobline(*argv: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), environ=environ, stdout=out, stderr=err)
        assert code == 0, err.getvalue()
        return out.getvalue()

    # When the command submits it and waits: the payload is uploaded to the bucket with the
    # form the API signed, the worker's poller runs the job, the result is downloaded from the
    # link the API signed, and checked
    shown = json.loads(
        jobline(
            "submit",
            "bulk",
            f"@{source}",
            "--wait",
            "--output",
            "json",
            "--timeout",
            "60",
        )
    )

    # Then the command printed the job whole: its payload and its 30 MB result
    assert shown["status"] == "succeeded"
    assert shown["payload"] == payload
    assert shown["result"]["blob_sha256"] == hashlib.sha256(b"b" * 4 * MIB).hexdigest()
    assert len(shown["result"]["data"]) == 30 * MIB
    assert shown["result_url"].startswith(local_stack.aws_endpoint)

    # And the client reads the same job the same way
    with Client(local_stack.api_url, dev_user=OWNER) as client:
        job = client.get(shown["id"])
    assert job.payload == payload and job.result == shown["result"]
    assert job.result_link is not None and job.result_link.size > 30 * MIB
