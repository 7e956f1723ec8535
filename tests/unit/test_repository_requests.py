"""The DynamoDB adapter's pure parts: request builders and the item <-> Job mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import ClientError
from botocore.session import Session
from botocore.stub import Stubber
from jobline.aws.items import item_to_job, job_to_item
from jobline.aws.listing import INDEX_BY_OWNER, INDEX_BY_OWNER_STATUS, build_query
from jobline.aws.repository import DynamoJobRepository, build_create, build_update
from jobline.errors import InvalidCursor
from jobline.models import Attempt, Job, JobError, JobFilter, JobStatus, Progress
from jobline.transition import JobUpdate, Precondition

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

TABLE = "jobs"
JOB_ID = "0123456789abcdef0123456789abcdef"
NOW = datetime(2025, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)
NOW_EPOCH = str(int(NOW.timestamp()))
QUEUED_ONLY = frozenset({JobStatus.QUEUED})


def _job(**fields: Any) -> Job:
    defaults: dict[str, Any] = {
        "id": JOB_ID,
        "owner": "ann",
        "type": "echo",
        "status": JobStatus.QUEUED,
        "payload": {"x": 1},
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Job.model_validate({**defaults, **fields})


def _attribute_values(node: Any) -> list[Any]:
    """Every leaf value inside a DynamoDB item, however deeply nested."""
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _attribute_values(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _attribute_values(value)]
    return [node]


# ------------------------------------------------------------------------- update


def test_claim_update_takes_the_job_out_of_the_status_index_and_increments_attempts() -> (
    None
):
    # Given the claim of a queued job
    change = JobUpdate(
        status=JobStatus.RUNNING,
        started_at=NOW,
        updated_at=NOW,
        increment_attempts=True,
    )

    # When the request is built
    request = build_update(TABLE, JOB_ID, change, Precondition("ann", QUEUED_ONLY))

    # Then it sets every field through placeholders, keeps owner_status in step (a running job
    # is not in the sparse status index: removed, which costs nothing when it was absent),
    # adds one attempt and only applies to ann's queued job
    assert request == {
        "TableName": TABLE,
        "Key": {"id": {"S": JOB_ID}},
        "UpdateExpression": (
            "SET #f1 = :v1, #f2 = :v2, #f3 = :v3, "
            "#attempts = #attempts + :one REMOVE #f0"
        ),
        "ConditionExpression": "#owner = :expect_owner AND #status IN (:expect_status0)",
        "ExpressionAttributeNames": {
            "#f0": "owner_status",
            "#f1": "started_at",
            "#f2": "status",
            "#f3": "updated_at",
            "#attempts": "attempts",
            "#owner": "owner",
            "#status": "status",
        },
        "ExpressionAttributeValues": {
            ":v1": {"S": "2025-01-15T12:00:00.123456Z"},
            ":v2": {"S": "running"},
            ":v3": {"S": "2025-01-15T12:00:00.123456Z"},
            ":one": {"N": "1"},
            ":expect_owner": {"S": "ann"},
            ":expect_status0": {"S": "queued"},
        },
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


@pytest.mark.parametrize("status", list(JobStatus))
def test_a_status_change_puts_the_job_in_the_status_index_only_where_it_is_kept(
    status: JobStatus,
) -> None:
    request = build_update(
        TABLE, JOB_ID, JobUpdate(status=status), Precondition("ann#x", QUEUED_ONLY)
    )

    names = request["ExpressionAttributeNames"]
    [placeholder] = [key for key, name in names.items() if name == "owner_status"]
    value = request["ExpressionAttributeValues"].get(":v" + placeholder[2:])
    if status in {
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.DEAD_LETTERED,
        JobStatus.REJECTED,
    }:
        assert value == {"S": f"ann%23x#{status.value}"}
    else:
        assert value is None
        assert request["UpdateExpression"].endswith(f"REMOVE {placeholder}")


def test_none_values_are_removed_and_attempts_are_part_of_the_condition() -> None:
    # Given a retry: back to queued, error recorded, result cleared, only if attempt 2 still runs
    change = JobUpdate(
        status=JobStatus.QUEUED,
        error=JobError(type="Boom", message="it broke"),
        result=None,
    )
    expect = Precondition("ann", frozenset({JobStatus.RUNNING}), attempts=2)

    request = build_update(TABLE, JOB_ID, change, expect)

    assert request["UpdateExpression"] == "SET #f0 = :v0, #f3 = :v3 REMOVE #f1, #f2"
    assert request["ExpressionAttributeNames"] == {
        "#f0": "error",
        "#f1": "owner_status",
        "#f2": "result",
        "#f3": "status",
        "#owner": "owner",
        "#status": "status",
        "#attempts": "attempts",
    }
    assert request["ExpressionAttributeValues"] == {
        ":v0": {"M": {"type": {"S": "Boom"}, "message": {"S": "it broke"}}},
        ":v3": {"S": "queued"},
        ":expect_owner": {"S": "ann"},
        ":expect_status0": {"S": "running"},
        ":expect_attempts": {"N": "2"},
    }
    assert request["ConditionExpression"] == (
        "#owner = :expect_owner AND #status IN (:expect_status0)"
        " AND #attempts = :expect_attempts"
    )


def test_an_update_without_status_leaves_the_index_key_alone() -> None:
    change = JobUpdate(updated_at=NOW)
    request = build_update(
        TABLE, JOB_ID, change, Precondition("ann", frozenset(JobStatus), attempts=None)
    )

    assert request["UpdateExpression"] == "SET #f0 = :v0"
    assert "owner_status" not in request["ExpressionAttributeNames"].values()
    assert request["ConditionExpression"] == (
        "#owner = :expect_owner AND #status IN (:expect_status0, :expect_status1,"
        " :expect_status2, :expect_status3, :expect_status4, :expect_status5,"
        " :expect_status6)"
    )
    assert [
        request["ExpressionAttributeValues"][f":expect_status{i}"]["S"]
        for i in range(7)
    ] == [
        "cancelled",
        "dead_lettered",
        "failed",
        "queued",
        "rejected",
        "running",
        "succeeded",
    ]


def test_a_claim_also_takes_a_running_job_whose_lease_ended() -> None:
    # Given the claim of a worker: queued, or running under an ended (or no) lease, with
    # attempts left
    change = JobUpdate(lease_until=NOW, increment_attempts=True)
    expect = Precondition(
        "ann", QUEUED_ONLY, lease_ended_before=NOW, below_max_attempts=True
    )

    # When the request is built
    request = build_update(TABLE, JOB_ID, change, expect)

    # Then the condition names each case, comparing the fixed-width UTC text of the lease
    assert request["ConditionExpression"] == (
        "#owner = :expect_owner AND (#status IN (:expect_status0) OR (#status = :running"
        " AND (attribute_not_exists(#lease_until) OR #lease_until < :lease_now)))"
        " AND #attempts < #max_attempts"
    )
    assert request["ExpressionAttributeNames"] == {
        "#f0": "lease_until",
        "#attempts": "attempts",
        "#owner": "owner",
        "#status": "status",
        "#lease_until": "lease_until",
        "#max_attempts": "max_attempts",
    }
    assert request["ExpressionAttributeValues"] == {
        ":v0": {"S": "2025-01-15T12:00:00.123456Z"},
        ":one": {"N": "1"},
        ":expect_owner": {"S": "ann"},
        ":expect_status0": {"S": "queued"},
        ":running": {"S": "running"},
        ":lease_now": {"S": "2025-01-15T12:00:00.123456Z"},
    }
    assert request["UpdateExpression"] == (
        "SET #f0 = :v0, #attempts = #attempts + :one"
    )


def test_history_entries_are_appended_to_the_list() -> None:
    # Given an outcome that appends two attempts
    lost = Attempt(
        attempt=1,
        started_at=NOW,
        error=JobError(type="WorkerLost", message="gone"),
        request_id="req-1",
    )
    ran = Attempt(
        attempt=2, started_at=NOW, finished_at=NOW, request_id="req-2", duration_ms=7
    )
    expect = Precondition("ann", frozenset({JobStatus.RUNNING}), attempts=2)

    # When the requests are built
    append = build_update(TABLE, JOB_ID, JobUpdate(append_history=(lost, ran)), expect)

    # Then appending creates the list when missing; every entry is a map without empty fields
    assert append["UpdateExpression"] == (
        "SET #history = list_append(if_not_exists(#history, :no_history), :new_attempt)"
    )
    assert append["ExpressionAttributeNames"]["#history"] == "history"
    assert append["ExpressionAttributeValues"][":no_history"] == {"L": []}
    assert append["ExpressionAttributeValues"][":new_attempt"] == {
        "L": [
            {
                "M": {
                    "attempt": {"N": "1"},
                    "run": {"N": "1"},
                    "started_at": {"S": "2025-01-15T12:00:00.123456Z"},
                    "error": {
                        "M": {"type": {"S": "WorkerLost"}, "message": {"S": "gone"}}
                    },
                    "request_id": {"S": "req-1"},
                }
            },
            {
                "M": {
                    "attempt": {"N": "2"},
                    "run": {"N": "1"},
                    "started_at": {"S": "2025-01-15T12:00:00.123456Z"},
                    "finished_at": {"S": "2025-01-15T12:00:00.123456Z"},
                    "request_id": {"S": "req-2"},
                    "duration_ms": {"N": "7"},
                }
            },
        ]
    }


@pytest.mark.parametrize(
    "change",
    [
        JobUpdate(status=JobStatus.CANCELLED, finished_at=NOW),
        JobUpdate(status=JobStatus.RUNNING, increment_attempts=True),
        JobUpdate(result={"type": 1}, error=None),
    ],
)
def test_reserved_words_never_appear_bare_in_expressions(change: JobUpdate) -> None:
    request = build_update(TABLE, JOB_ID, change, Precondition("ann", QUEUED_ONLY, 1))
    expressions = f"{request['UpdateExpression']} {request['ConditionExpression']}"
    words = {word.strip("(),") for word in expressions.split()}

    # Every name is a #placeholder and every value a :placeholder
    assert {"status", "owner", "attempts", "result", "error", "type"} & words == set()
    assert all(
        word[0] in "#:" or word in {"SET", "REMOVE", "AND", "IN", "=", "+"}
        for word in words
    )


# ------------------------------------------------------------------------- create


def test_create_only_succeeds_when_no_live_job_has_the_id() -> None:
    job = _job()
    request = build_create(TABLE, job, NOW)

    assert request == {
        "TableName": TABLE,
        "Item": job_to_item(job),
        "ConditionExpression": "attribute_not_exists(id) OR expires_at <= :now",
        "ExpressionAttributeValues": {":now": {"N": NOW_EPOCH}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


# -------------------------------------------------------------------------- query


@pytest.mark.parametrize(
    ("job_filter", "index", "key_name", "key_value", "limit"),
    [
        (JobFilter(), INDEX_BY_OWNER, "owner", "ann", 25),
        (
            JobFilter(status=JobStatus.FAILED),
            INDEX_BY_OWNER_STATUS,
            "owner_status",
            "ann#failed",
            25,
        ),
        (JobFilter(type="http.request"), INDEX_BY_OWNER, "owner", "ann", 25),
        (
            JobFilter(status=JobStatus.REJECTED, type="echo"),
            INDEX_BY_OWNER_STATUS,
            "owner_status",
            "ann#rejected",
            25,
        ),
        # a status the index does not keep: the owner's index, bigger pages, checked on items
        (JobFilter(status=JobStatus.QUEUED), INDEX_BY_OWNER, "owner", "ann", 100),
        (
            JobFilter(status=JobStatus.SUCCEEDED, type="echo"),
            INDEX_BY_OWNER,
            "owner",
            "ann",
            100,
        ),
    ],
    ids=["all", "status", "type", "status-and-type", "queued", "succeeded-and-type"],
)
def test_query_reads_the_narrowest_index_newest_first(
    job_filter: JobFilter,
    index: str,
    key_name: str,
    key_value: str,
    limit: int,
) -> None:
    request = build_query(TABLE, "ann", job_filter, 25, None)

    assert request["TableName"] == TABLE
    assert request["IndexName"] == index
    assert request["KeyConditionExpression"] == "#pk = :pk"
    assert request["ExpressionAttributeNames"]["#pk"] == key_name
    assert request["ExpressionAttributeValues"][":pk"] == {"S": key_value}
    assert request["ScanIndexForward"] is False
    assert request["Limit"] == limit
    assert "ExclusiveStartKey" not in request
    if job_filter.type is not None:
        assert request["FilterExpression"] == "#type = :type"
        assert request["ExpressionAttributeValues"][":type"] == {"S": job_filter.type}
        assert request["ExpressionAttributeNames"]["#type"] == "type"
    else:
        assert "FilterExpression" not in request


def test_query_resumes_from_the_start_key() -> None:
    start = {
        "id": JOB_ID,
        "sk": f"2025-01-15T12:00:00.123456Z#{JOB_ID}",
        "owner": "ann",
    }

    request = build_query(TABLE, "ann", JobFilter(), 10, start)

    assert request["ExclusiveStartKey"] == {
        "id": {"S": JOB_ID},
        "sk": {"S": f"2025-01-15T12:00:00.123456Z#{JOB_ID}"},
        "owner": {"S": "ann"},
    }


# ------------------------------------------------------------------ item mapping

EXACT_NUMBERS: dict[str, Any] = {
    "tenth": 0.1,
    "third": 1 / 3,
    "one": 1.0,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "big": 10**30,
    "negative_big": -(10**40),
    "nested": [{"f": -2.5e-10, "i": 7}, [0.30000000000000004]],
    "text": "ünïcode ✓",
}


def test_a_finished_job_round_trips_exactly() -> None:
    # Given a failed job with numbers DynamoDB's Decimal would mangle
    job = _job(
        status=JobStatus.FAILED,
        payload=EXACT_NUMBERS,
        result={"partial": EXACT_NUMBERS},
        error=JobError(type="HttpStatusError", message="GET answered 503"),
        attempts=3,
        max_attempts=3,
        delay_seconds=900,
        started_at=NOW,
        finished_at=NOW,
        request_hash="ab" * 32,
        expires_at=1_800_000_000,
    )

    # When it goes to an item and back
    item = job_to_item(job)
    back = item_to_job(item)

    # Then nothing changed, down to the type of every number
    assert back == job
    assert json.dumps(back.payload) == json.dumps(job.payload)
    assert json.dumps(back.result) == json.dumps(job.result)
    assert item["sk"] == {"S": f"2025-01-15T12:00:00.123456Z#{JOB_ID}"}
    assert item["owner_status"] == {"S": "ann#failed"}
    assert "owner_type" not in item  # a type is a filter: no index, no key
    assert item["expires_at"] == {"N": "1800000000"}
    assert item["error"] == {
        "M": {"type": {"S": "HttpStatusError"}, "message": {"S": "GET answered 503"}}
    }


def test_a_job_with_history_progress_and_lease_round_trips_exactly() -> None:
    # Given a running job on its second attempt: history, progress, lease, cancel request
    job = _job(
        status=JobStatus.RUNNING,
        attempts=2,
        started_at=NOW,
        run_after=NOW,
        lease_until=NOW,
        attempt_request_id="req-2",
        cancel_requested_at=NOW,
        progress=Progress(percent=42.125, message="half way", updated_at=NOW),
        history=(
            Attempt(
                attempt=1,
                started_at=NOW,
                finished_at=NOW,
                error=JobError(type="Boom", message="first try"),
                request_id="req-1",
                duration_ms=1500,
            ),
        ),
    )

    # When it goes to an item and back
    item = job_to_item(job)

    # Then nothing changed; progress is a map with its percent as a decimal number
    assert item_to_job(item) == job
    assert item["progress"] == {
        "M": {
            "percent": {"N": "42.125"},
            "updated_at": {"S": "2025-01-15T12:00:00.123456Z"},
            "message": {"S": "half way"},
        }
    }
    assert item["lease_until"] == {"S": "2025-01-15T12:00:00.123456Z"}
    assert all(isinstance(leaf, str) for leaf in _attribute_values(item))


def test_a_new_job_item_has_no_empty_attributes() -> None:
    job = _job()

    item = job_to_item(job)

    assert set(item) == {
        "id",
        "owner",
        "type",
        "status",
        "payload",
        "attempts",
        "max_attempts",
        "run",
        "lane",
        "delay_seconds",
        "created_at",
        "updated_at",
        "sk",
    }  # queued: not in the sparse status index
    assert item_to_job(item) == job


@pytest.mark.parametrize(
    "job",
    [
        _job(),
        _job(payload=EXACT_NUMBERS, result=EXACT_NUMBERS, status=JobStatus.SUCCEEDED),
        _job(payload=[1.5, 2.5], result=0.1, status=JobStatus.SUCCEEDED),
    ],
    ids=["new", "floats", "scalar-float-result"],
)
def test_no_python_float_ever_appears_in_an_item(job: Job) -> None:
    leaves = _attribute_values(job_to_item(job))

    assert leaves
    assert all(isinstance(leaf, str) for leaf in leaves)


# ----------------------------------------------------------------- error translation


def _stubbed_repository() -> tuple[DynamoJobRepository, Stubber]:
    client = Session().create_client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return DynamoJobRepository(cast("DynamoDBClient", client), TABLE), Stubber(client)


def test_a_resume_key_dynamodb_refuses_is_an_invalid_cursor() -> None:
    # Given DynamoDB answering a query's ExclusiveStartKey with a ValidationException
    repo, stub = _stubbed_repository()
    stub.add_client_error(
        "query",
        service_error_code="ValidationException",
        service_message="The provided starting key is invalid",
        http_status_code=400,
    )

    # When a listing resumes from it, then it is the caller's bad cursor
    with stub, pytest.raises(InvalidCursor):
        repo.query("ann", JobFilter(), 10, {"id": "x"}, NOW)


def test_a_validation_error_without_a_resume_key_is_not_blamed_on_a_cursor() -> None:
    repo, stub = _stubbed_repository()
    stub.add_client_error("query", service_error_code="ValidationException")

    with stub, pytest.raises(ClientError):
        repo.query("ann", JobFilter(), 10, None, NOW)
