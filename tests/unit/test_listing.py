"""`jobline.aws.listing` on a stubbed DynamoDB client: the index names the jobs, BatchGetItem reads
them, and only the caller's live jobs matching the filter come back, with an exact resume key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from botocore.session import Session
from botocore.stub import ANY, Stubber
from jobline.aws.items import job_to_item, sort_key
from jobline.aws.listing import (
    INDEX_BY_OWNER,
    INDEX_BY_OWNER_STATUS,
    MAX_PAGES_PER_LIST,
    SCAN_PAGE,
    UNPROCESSED_PAUSES_S,
    list_jobs,
)
from jobline.errors import StorageUnavailable
from jobline.models import Job, JobFilter, JobStatus
from jobline.ports import StartKey

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

TABLE = "jobs"
NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)


def _job(n: int, status: JobStatus = JobStatus.QUEUED, **fields: Any) -> Job:
    created = NOW - timedelta(seconds=n)
    return Job.model_validate(
        {
            "id": f"{n:032x}",
            "owner": "ann",
            "type": "echo",
            "status": status,
            "payload": {"n": n},
            "created_at": created,
            "updated_at": created,
            **fields,
        }
    )


def _entry(job: Job, key_name: str = "owner") -> dict[str, Any]:
    """The job's entry in an index (keys and type: the template's projection)."""
    item = job_to_item(job)
    return {name: item[name] for name in ("id", "sk", "type", key_name)}


def _key(job: Job, key_name: str = "owner") -> StartKey:
    return {"id": job.id, "sk": sort_key(job), key_name: job.owner}


class Stubbed:
    def __init__(self) -> None:
        client = Session().create_client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.client = cast("DynamoDBClient", client)
        self.stub = Stubber(client)
        self.pauses: list[float] = []

    def query(
        self, entries: list[dict[str, Any]], last: Job | None = None, **expected: Any
    ) -> None:
        response: dict[str, Any] = {"Items": entries}
        if last is not None:
            response["LastEvaluatedKey"] = {
                name: {"S": value} for name, value in _key(last).items()
            }
        params = {
            "TableName": TABLE,
            "IndexName": ANY,
            "KeyConditionExpression": ANY,
            "ExpressionAttributeNames": ANY,
            "ExpressionAttributeValues": ANY,
            "ScanIndexForward": False,
            "Limit": ANY,
            **expected,
        }
        self.stub.add_response("query", response, params)

    def batch_get(
        self,
        ids: list[str],
        items: list[dict[str, Any]],
        unprocessed: list[str] = (),  # type: ignore[assignment]
    ) -> None:
        response: dict[str, Any] = {"Responses": {TABLE: items}}
        if unprocessed:
            response["UnprocessedKeys"] = {
                TABLE: {"Keys": [{"id": {"S": i}} for i in unprocessed]}
            }
        self.stub.add_response(
            "batch_get_item",
            response,
            {"RequestItems": {TABLE: {"Keys": [{"id": {"S": i}} for i in ids]}}},
        )

    def list(
        self, job_filter: JobFilter, limit: int, start: StartKey | None = None
    ) -> tuple[list[Job], StartKey | None]:
        with self.stub:
            result = list_jobs(
                self.client,
                TABLE,
                "ann",
                job_filter,
                limit,
                start,
                NOW,
                translate=_translate,
                sleep=self.pauses.append,
            )
            self.stub.assert_no_pending_responses()
        return result


def _translate(exc: ClientError | BotoCoreError, operation: str) -> Exception:
    return StorageUnavailable(f"{operation}: {exc}")


def test_the_index_names_the_jobs_and_one_batch_read_fetches_them_in_index_order() -> (
    None
):
    # Given an owner's index page of three entries, and the table answering out of order
    dynamo = Stubbed()
    jobs = [_job(n) for n in range(3)]
    dynamo.query([_entry(j) for j in jobs], IndexName=INDEX_BY_OWNER, Limit=3)
    dynamo.batch_get([j.id for j in jobs], [job_to_item(j) for j in reversed(jobs)])

    # When ann lists three jobs
    found, start = dynamo.list(JobFilter(), 3)

    # Then they come back newest first (the index's order), and nothing is left
    assert [j.id for j in found] == [j.id for j in jobs]
    assert found[0].payload == {"n": 0}
    assert start is None


def test_keys_the_batch_read_left_unprocessed_are_asked_for_again() -> None:
    # Given a throttled BatchGetItem that answers one of two jobs at first
    dynamo = Stubbed()
    jobs = [_job(n) for n in range(2)]
    dynamo.query([_entry(j) for j in jobs])
    dynamo.batch_get([j.id for j in jobs], [job_to_item(jobs[1])], [jobs[0].id])
    dynamo.batch_get([jobs[0].id], [job_to_item(jobs[0])])

    # When ann lists them
    found, _ = dynamo.list(JobFilter(), 5)

    # Then both come back in order after one pause
    assert [j.id for j in found] == [j.id for j in jobs]
    assert dynamo.pauses == [UNPROCESSED_PAUSES_S[0]]


def test_keys_left_unprocessed_every_time_make_the_storage_unavailable() -> None:
    # Given a BatchGetItem that never answers
    dynamo = Stubbed()
    job = _job(0)
    dynamo.query([_entry(job)])
    for _ in range(len(UNPROCESSED_PAUSES_S) + 1):
        dynamo.batch_get([job.id], [], [job.id])

    # Then after its pauses the listing is a 503's StorageUnavailable, not a short page
    with pytest.raises(StorageUnavailable):
        dynamo.list(JobFilter(), 5)
    assert dynamo.pauses == list(UNPROCESSED_PAUSES_S)


def test_a_job_gone_foreign_or_expired_since_the_index_named_it_is_left_out() -> None:
    # Given index entries for a deleted job, another owner's job, an expired job and a live one
    dynamo = Stubbed()
    gone, foreign, expired, live = _job(0), _job(1), _job(2), _job(3)
    foreign = foreign.model_copy(update={"owner": "bob"})
    expired = expired.model_copy(
        update={"status": JobStatus.SUCCEEDED, "expires_at": int(NOW.timestamp())}
    )
    entries = [_entry(j) for j in (gone, foreign, expired, live)]
    dynamo.query(entries)
    dynamo.batch_get(
        [j.id for j in (gone, foreign, expired, live)],
        [job_to_item(j) for j in (foreign, expired, live)],
    )

    # When ann lists her jobs
    found, start = dynamo.list(JobFilter(), 10)

    # Then only the live one of hers is there
    assert [j.id for j in found] == [live.id]
    assert start is None


def test_a_status_the_index_does_not_hold_reads_big_pages_and_resumes_just_after_the_last_job() -> (
    None
):
    # Given the owner's index, where two of three entries are queued
    dynamo = Stubbed()
    first, done, second = _job(0), _job(1, JobStatus.SUCCEEDED), _job(2)
    more = _job(3)
    dynamo.query(
        [_entry(j) for j in (first, done, second)],
        last=more,
        IndexName=INDEX_BY_OWNER,
        Limit=SCAN_PAGE,
    )
    dynamo.batch_get(
        [first.id, done.id, second.id], [job_to_item(j) for j in (first, done, second)]
    )

    # When ann asks for one queued job
    found, start = dynamo.list(JobFilter(status=JobStatus.QUEUED), 1)

    # Then she gets the newest, and the resume key is that job's entry (not the page's end), so
    # the next call will see `second`
    assert [j.id for j in found] == [first.id]
    assert start == _key(first)


def test_a_kept_status_reads_the_sparse_index_with_pages_of_the_asked_size() -> None:
    # Given the status index's partition of ann's failed jobs
    dynamo = Stubbed()
    failed = _job(0, JobStatus.FAILED)
    dynamo.query(
        [_entry(failed, "owner_status") | {"owner_status": {"S": "ann#failed"}}],
        IndexName=INDEX_BY_OWNER_STATUS,
        Limit=2,
        ExpressionAttributeValues={":pk": {"S": "ann#failed"}},
    )
    dynamo.batch_get([failed.id], [job_to_item(failed)])

    # When ann lists her failed jobs
    found, start = dynamo.list(JobFilter(status=JobStatus.FAILED), 2)

    # Then the job comes back, and the page was the size she asked for
    assert [j.id for j in found] == [failed.id]
    assert start is None


def test_empty_index_pages_are_followed_without_a_batch_read() -> None:
    # Given an index whose first page holds only filtered-out entries (the type filter)
    dynamo = Stubbed()
    job = _job(5).model_copy(update={"type": "sleep"})
    dynamo.query([], last=_job(4), FilterExpression="#type = :type")
    dynamo.query(
        [_entry(job)],
        FilterExpression="#type = :type",
        ExclusiveStartKey={name: {"S": v} for name, v in _key(_job(4)).items()},
    )
    dynamo.batch_get([job.id], [job_to_item(job)])

    # When ann lists her sleep jobs
    found, start = dynamo.list(JobFilter(type="sleep"), 3)

    # Then the empty page costs no read and the listing goes on to the next one
    assert [j.id for j in found] == [job.id]
    assert start is None


def test_a_call_reads_a_bounded_number_of_pages_and_answers_with_where_it_stopped() -> (
    None
):
    # Given an owner's index where page after page holds only succeeded jobs
    dynamo = Stubbed()
    done = [_job(n, JobStatus.SUCCEEDED) for n in range(MAX_PAGES_PER_LIST + 1)]
    for n in range(MAX_PAGES_PER_LIST):
        resume = {} if n == 0 else {"ExclusiveStartKey": ANY}
        dynamo.query([_entry(done[n])], last=done[n], Limit=SCAN_PAGE, **resume)
        dynamo.batch_get([done[n].id], [job_to_item(done[n])])

    # When ann lists her queued jobs
    found, start = dynamo.list(JobFilter(status=JobStatus.QUEUED), 5)

    # Then the call stops after its bounded reads with an empty page and the key to go on from
    assert found == []
    assert start == _key(done[MAX_PAGES_PER_LIST - 1])
