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
    SUMMARY_ATTRIBUTES,
    UNPROCESSED_PAUSES_S,
    list_jobs,
)
from jobline.errors import InvalidCursor, StorageUnavailable
from jobline.limits import LIST_PAGE_MAX_BYTES, SUMMARY_TEXT_CHARS
from jobline.models import Job, JobFilter, JobStatus, JobSummary
from jobline.ports import StartKey

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

TABLE = "jobs"
NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
PROJECTED_NAMES = {f"#a{n}": name for n, name in enumerate(SUMMARY_ATTRIBUTES)}
PROJECTION = ", ".join(PROJECTED_NAMES)


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
        """A BatchGetItem of the summaries of `ids`, answering `items` as the projection leaves
        them (`SUMMARY_ATTRIBUTES` only)."""
        projected = [
            {name: attr for name, attr in item.items() if name in SUMMARY_ATTRIBUTES}
            for item in items
        ]
        response: dict[str, Any] = {"Responses": {TABLE: projected}}
        if unprocessed:
            response["UnprocessedKeys"] = {
                TABLE: {
                    "Keys": [{"id": {"S": i}} for i in unprocessed],
                    "ProjectionExpression": PROJECTION,
                    "ExpressionAttributeNames": PROJECTED_NAMES,
                }
            }
        self.stub.add_response(
            "batch_get_item",
            response,
            {
                "RequestItems": {
                    TABLE: {
                        "Keys": [{"id": {"S": i}} for i in ids],
                        "ProjectionExpression": PROJECTION,
                        "ExpressionAttributeNames": PROJECTED_NAMES,
                    }
                }
            },
        )

    def list(
        self,
        job_filter: JobFilter,
        limit: int,
        start: StartKey | None = None,
        max_bytes: int = LIST_PAGE_MAX_BYTES,
    ) -> tuple[list[JobSummary], StartKey | None]:
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
                max_bytes=max_bytes,
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

    # Then they come back newest first (the index's order), as summaries read without their
    # payload (the batch read's projection), and nothing is left
    assert found == [JobSummary.of(j) for j in jobs]
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


# ------------------------------------------------------------- the page's byte budget


def _big(n: int, chars: int = 2000) -> Job:
    """A failed job whose summary is large: its progress message at the model's bound, and an
    error cut to the summary's bound."""
    created = NOW - timedelta(seconds=n)
    return _job(
        n,
        JobStatus.FAILED,
        error={"type": "Boom", "message": "m" * chars},
        progress={"percent": 50, "message": "p" * 1024, "updated_at": created},
    )


def test_a_page_stops_before_its_byte_budget_and_resumes_just_after_its_last_job() -> (
    None
):
    # Given three jobs whose summaries fit two at a time in the budget
    dynamo = Stubbed()
    jobs = [_big(n) for n in range(3)]
    size = JobSummary.of(jobs[0]).encoded_size()
    dynamo.query([_entry(j) for j in jobs], Limit=3)
    dynamo.batch_get([j.id for j in jobs], [job_to_item(j) for j in jobs])

    # When ann lists three jobs within 2.5 summaries' bytes
    found, start = dynamo.list(JobFilter(), 3, max_bytes=size * 5 // 2)

    # Then the page is short, and resumes right after its last job (the third is next)
    assert [j.id for j in found] == [jobs[0].id, jobs[1].id]
    assert start == _key(jobs[1])
    assert sum(j.encoded_size() for j in found) <= size * 5 // 2


def test_a_job_over_the_budget_opening_a_later_index_page_resumes_from_that_page() -> (
    None
):
    # Given a first index page with one queued job (the rest succeeded) and a second page whose
    # first entry would overflow the budget
    dynamo = Stubbed()
    first, done, overflow = _big(0, 10), _job(1, JobStatus.SUCCEEDED), _big(2, 10)
    first = first.model_copy(update={"status": JobStatus.QUEUED})
    overflow = overflow.model_copy(update={"status": JobStatus.QUEUED})
    dynamo.query([_entry(first), _entry(done)], last=done, Limit=SCAN_PAGE)
    dynamo.batch_get([first.id, done.id], [job_to_item(j) for j in (first, done)])
    dynamo.query(
        [_entry(overflow)],
        Limit=SCAN_PAGE,
        ExclusiveStartKey={name: {"S": v} for name, v in _key(done).items()},
    )
    dynamo.batch_get([overflow.id], [job_to_item(overflow)])
    budget = JobSummary.of(first).encoded_size() + 10

    # When ann lists her queued jobs within a budget that fits only the first
    found, start = dynamo.list(JobFilter(status=JobStatus.QUEUED), 5, max_bytes=budget)

    # Then the second page's job is left for the next call: it resumes where that page began
    assert [j.id for j in found] == [first.id]
    assert start == _key(done)


def test_a_page_holds_one_job_whatever_its_size() -> None:
    dynamo = Stubbed()
    jobs = [_big(n) for n in range(2)]
    dynamo.query([_entry(j) for j in jobs], Limit=2)
    dynamo.batch_get([j.id for j in jobs], [job_to_item(j) for j in jobs])

    found, start = dynamo.list(JobFilter(), 2, max_bytes=1)

    assert [j.id for j in found] == [jobs[0].id]
    assert start == _key(jobs[0])


def test_a_summary_bounds_the_error_and_says_so() -> None:
    # Given a job failed with an error longer than a summary keeps
    dynamo = Stubbed()
    job = _big(0, SUMMARY_TEXT_CHARS + 1)
    dynamo.query([_entry(job)], Limit=1)
    dynamo.batch_get([job.id], [job_to_item(job)])

    [found], _ = dynamo.list(JobFilter(), 1)

    assert found.error is not None and found.error_truncated
    assert found.error.message == "m" * SUMMARY_TEXT_CHARS
    # And one that fits is whole, flagged as such
    assert JobSummary.of(_big(1, SUMMARY_TEXT_CHARS)).error_truncated is False


# --------------------------------------------------------- resume keys of other versions

EARLIER_SHAPES: dict[str, tuple[JobFilter, StartKey]] = {
    "id only": (JobFilter(), {"id": _job(1).id}),
    "missing sk": (JobFilter(), {"id": _job(1).id, "owner": "ann"}),
    "missing id": (JobFilter(), {"sk": sort_key(_job(1)), "owner": "ann"}),
    "unknown attribute": (JobFilter(), _key(_job(1)) | {"shard": "3"}),
    "by_owner_type (type filter, before e036521)": (
        JobFilter(type="echo"),
        {"id": _job(1).id, "sk": sort_key(_job(1)), "owner_type": "ann#echo"},
    ),
    "status index holding every status (queued, before bbbb750)": (
        JobFilter(status=JobStatus.QUEUED),
        {"id": _job(1).id, "sk": sort_key(_job(1)), "owner_status": "ann#queued"},
    ),
    "another partition": (
        JobFilter(status=JobStatus.FAILED),
        {"id": _job(1).id, "sk": sort_key(_job(1)), "owner_status": "bob#failed"},
    ),
    "sk of another job": (JobFilter(), _key(_job(1)) | {"sk": sort_key(_job(2))}),
    "sk that is no timestamp": (JobFilter(), _key(_job(1)) | {"sk": f"x#{_job(1).id}"}),
}


@pytest.mark.parametrize("shape", sorted(EARLIER_SHAPES))
def test_a_resume_key_of_another_shape_is_refused_before_dynamodb_sees_it(
    shape: str,
) -> None:
    # Given no DynamoDB answer at all (the stub fails any call)
    dynamo = Stubbed()
    job_filter, start = EARLIER_SHAPES[shape]

    # Then the listing refuses the key itself
    with pytest.raises(InvalidCursor):
        dynamo.list(job_filter, 5, start)
