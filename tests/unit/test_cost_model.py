"""The write-unit model behind `make bench`'s cost table (bench/cost.py): DynamoDB's item size
rules, and which index writes a table write causes, on the template's own indexes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobline.aws.items import job_to_item
from jobline.aws.listing import INDEX_BY_OWNER, INDEX_BY_OWNER_STATUS
from jobline.models import Job, JobStatus

from bench.cost import Index, item_size, job_writes, table_indexes, units, value_size

TABLE_KEY = ("id",)
NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)


def _job(status: JobStatus = JobStatus.QUEUED, **fields: Any) -> Job:
    return Job(
        id="a" * 32,
        owner="ann",
        type="echo",
        status=status,
        payload={"n": 1},
        created_at=NOW,
        updated_at=NOW,
        **fields,
    )


def test_sizes_follow_dynamodbs_rules() -> None:
    # Then strings count their UTF-8 bytes, numbers a byte per two significant digits plus one,
    # maps and lists three bytes plus one per element, and an item its names and values
    assert value_size({"S": "héllo"}) == 6
    assert value_size({"N": "12345"}) == 4
    assert value_size({"N": "1000"}) == 2
    assert value_size({"M": {"a": {"S": "xy"}}}) == 3 + 1 + 2 + 1
    assert value_size({"L": [{"S": "x"}, {"BOOL": True}]}) == 3 + 2 + 2
    assert item_size({"id": {"S": "abc"}, "n": {"N": "7"}}) == 2 + 3 + 1 + 2
    assert [units(0), units(1024), units(1025)] == [1, 1, 2]


def test_a_succeeding_job_writes_the_owner_index_once_and_the_status_index_never() -> (
    None
):
    # Given the template's indexes and a job's three items: submitted, claimed, succeeded
    table_key, indexes = table_indexes()
    images = [
        job_to_item(_job()),
        job_to_item(_job(JobStatus.RUNNING, attempts=1, started_at=NOW)),
        job_to_item(_job(JobStatus.SUCCEEDED, attempts=1, result={"n": 1})),
    ]

    # When the writes between them are priced
    writes = job_writes(images, table_key, indexes)

    # Then the submit puts the job's keys and type in the owner's index, no transition touches
    # it again (nothing it projects changes), and the sparse status index never holds the job
    assert {index.name for index in indexes} == {INDEX_BY_OWNER, INDEX_BY_OWNER_STATUS}
    assert [w.index_units for w in writes] == [
        {INDEX_BY_OWNER: (1, "put"), INDEX_BY_OWNER_STATUS: (0, "-")},
        {INDEX_BY_OWNER: (0, "unchanged"), INDEX_BY_OWNER_STATUS: (0, "-")},
        {INDEX_BY_OWNER: (0, "unchanged"), INDEX_BY_OWNER_STATUS: (0, "-")},
    ]
    assert sum(w.total for w in writes) == 4


def test_a_job_that_fails_enters_the_status_index_once_and_leaves_it_on_retry() -> None:
    # Given a job that runs, fails, and is retried by its owner
    table_key, indexes = table_indexes()
    images = [
        job_to_item(_job()),
        job_to_item(_job(JobStatus.RUNNING, attempts=1, started_at=NOW)),
        job_to_item(_job(JobStatus.FAILED, attempts=1)),
        job_to_item(_job(JobStatus.QUEUED, attempts=1)),
    ]

    # When the writes are priced
    writes = job_writes(images, table_key, indexes)

    # Then the failure puts it in the status index (findable among many) and the retry deletes it
    assert [w.index_units[INDEX_BY_OWNER_STATUS] for w in writes] == [
        (0, "-"),
        (0, "-"),
        (1, "put"),
        (1, "delete"),
    ]


def test_an_index_without_the_changed_attributes_is_not_written() -> None:
    # Given a keys-only index, and a sparse one whose key the item lacks
    keys_only = Index("by_owner", ("owner", "sk"), "KEYS_ONLY")
    sparse = Index("sparse", ("flagged", "sk"), "ALL")
    before = job_to_item(_job())
    after = job_to_item(_job(JobStatus.RUNNING, attempts=1))

    # Then a write that changes no key leaves the keys-only index alone, and an item outside an
    # index costs it nothing; leaving an index is one delete
    assert keys_only.write_units(before, after, TABLE_KEY) == (0, "unchanged")
    assert sparse.write_units(before, after, TABLE_KEY) == (0, "-")
    flagged = {**before, "flagged": {"S": "yes"}}
    assert sparse.write_units(flagged, after, TABLE_KEY) == (1, "delete")
