"""DynamoJobRepository against the template's table in moto: round trips, conditional writes, queries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jobline.aws.items import INDEXED_STATUSES
from jobline.aws.listing import MAX_PAGES_PER_LIST
from jobline.aws.repository import DynamoJobRepository
from jobline.errors import ConditionFailed
from jobline.models import Job, JobError, JobFilter, JobStatus, JobSummary
from jobline.ports import StartKey
from jobline.transition import JobUpdate, Precondition

from tests.conftest import MotoStack

NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
NOW_EPOCH = int(NOW.timestamp())
QUEUED = frozenset({JobStatus.QUEUED})
RUNNING = frozenset({JobStatus.RUNNING})
PAGE_BOUND = 50
"""No listing in this file needs more calls than this; reaching it means the resume key loops."""
FILTERS = {
    "all": JobFilter(),
    "status": JobFilter(status=JobStatus.SUCCEEDED),
    "type": JobFilter(type="echo"),
    "status and type": JobFilter(status=JobStatus.SUCCEEDED, type="echo"),
}


@pytest.fixture
def repo(moto_stack: MotoStack) -> DynamoJobRepository:
    return DynamoJobRepository(moto_stack.dynamodb, moto_stack.table)


def new_job(
    *,
    owner: str = "ann",
    job_type: str = "echo",
    status: JobStatus = JobStatus.QUEUED,
    age_s: int = 0,
    **fields: Any,
) -> Job:
    """A job created `age_s` seconds before NOW (larger age = older = later in a listing)."""
    created = NOW - timedelta(seconds=age_s)
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "owner": owner,
        "type": job_type,
        "status": status,
        "payload": {"age": age_s},
        "created_at": created,
        "updated_at": created,
        **fields,
    }
    return Job.model_validate(values)


def create_all(repo: DynamoJobRepository, jobs: list[Job]) -> None:
    for job in jobs:
        repo.create(job, NOW)


def ids(jobs: Sequence[Job | JobSummary]) -> list[str]:
    return [job.id for job in jobs]


def newest_first(jobs: list[Job]) -> list[str]:
    return ids(sorted(jobs, key=lambda job: job.created_at, reverse=True))


def list_all(
    repo: DynamoJobRepository,
    owner: str,
    job_filter: JobFilter,
    limit: int,
) -> tuple[list[JobSummary], list[list[JobSummary]]]:
    """Every job of a listing, following resume keys; also the pages as returned."""
    pages: list[list[JobSummary]] = []
    start: StartKey | None = None
    for _ in range(PAGE_BOUND):
        page, start = repo.query(owner, job_filter, limit, start, NOW)
        assert len(page) <= limit
        pages.append(page)
        if start is None:
            return [job for page in pages for job in page], pages
    raise AssertionError(f"listing did not end within {PAGE_BOUND} calls")


def raw_item(moto_stack: MotoStack, job_id: str) -> dict[str, Any]:
    item: dict[str, Any] = moto_stack.dynamodb.get_item(
        TableName=moto_stack.table, Key={"id": {"S": job_id}}, ConsistentRead=True
    )["Item"]
    return item


# ----------------------------------------------------------------------------- create / get


def test_create_then_get_round_trips_every_field_exactly(
    repo: DynamoJobRepository,
) -> None:
    # Given a finished job whose payload and result hold awkward numbers and nesting
    payload = {
        "tenth": 0.1,
        "tiny": 1e-7,
        "sum": 0.30000000000000004,
        "max": 1.7976931348623157e308,
        "big": 12345678901234567890123,
        "negative_big": -(10**30),
        "nested": {"list": [1, 2.5, {"deep": [None, True, False, "ü", ""]}], "e": {}},
    }
    result = {"echo": payload, "ratio": 2 / 3}
    job = new_job(
        status=JobStatus.SUCCEEDED,
        payload=payload,
        result=result,
        error=JobError(type="HttpNetworkError", message="first attempt failed"),
        attempts=2,
        max_attempts=5,
        delay_seconds=30,
        started_at=NOW + timedelta(seconds=1),
        finished_at=NOW + timedelta(seconds=2, microseconds=1),
        request_hash="a" * 64,
        expires_at=NOW_EPOCH + 86400,
    )

    # When it is stored and read back
    repo.create(job, NOW)
    stored = repo.get(job.id)

    # Then every field is equal, floats and big ints keep their exact value and type
    assert stored == job
    assert stored is not None
    assert json.dumps(stored.payload) == json.dumps(payload)
    assert json.dumps(stored.result) == json.dumps(result)
    assert type(stored.payload["tiny"]) is float
    assert type(stored.payload["big"]) is int
    assert stored.payload["big"] == 12345678901234567890123


def test_create_then_get_keeps_a_queued_job_without_optional_fields(
    repo: DynamoJobRepository,
) -> None:
    # Given a fresh queued job: no result, error, start, finish or expiry
    job = new_job(payload={"x": 0.1})

    # When it is stored and read back
    repo.create(job, NOW)

    # Then it is the same job, the optional fields still unset
    stored = repo.get(job.id)
    assert stored == job
    assert stored is not None
    assert (stored.result, stored.error, stored.started_at, stored.expires_at) == (
        None,
        None,
        None,
        None,
    )


def test_get_of_an_unknown_id_is_none(repo: DynamoJobRepository) -> None:
    # Given an empty table
    # When an id nobody stored is read
    # Then there is no job
    assert repo.get(uuid.uuid4().hex) is None


def test_create_twice_fails_with_the_current_job(repo: DynamoJobRepository) -> None:
    # Given a stored job
    first = new_job(payload={"v": 1})
    repo.create(first, NOW)

    # When another job with the same id is created
    second = first.model_copy(update={"payload": {"v": 2}})
    with pytest.raises(ConditionFailed) as lost:
        repo.create(second, NOW)

    # Then the condition fails carrying the stored job, which is unchanged
    assert lost.value.current == first
    assert repo.get(first.id) == first


def test_create_over_an_expired_item_replaces_it(repo: DynamoJobRepository) -> None:
    # Given a stored job whose expiry has passed (TTL has not deleted it yet)
    old = new_job(status=JobStatus.SUCCEEDED, expires_at=NOW_EPOCH - 1)
    repo.create(old, NOW)

    # When a new job with the same id is created
    new = new_job(payload={"fresh": True}).model_copy(update={"id": old.id})
    repo.create(new, NOW)

    # Then the new job is stored in its place
    assert repo.get(old.id) == new


def test_create_over_an_item_expiring_exactly_now_replaces_it(
    repo: DynamoJobRepository,
) -> None:
    # Given a stored job expiring at this very second
    old = new_job(status=JobStatus.SUCCEEDED, expires_at=NOW_EPOCH)
    repo.create(old, NOW)

    # When a new job with the same id is created now
    new = new_job().model_copy(update={"id": old.id})
    repo.create(new, NOW)

    # Then it counts as expired and is replaced
    assert repo.get(old.id) == new


def test_create_over_a_not_yet_expired_item_fails(repo: DynamoJobRepository) -> None:
    # Given a stored job that expires one second from now
    old = new_job(status=JobStatus.SUCCEEDED, expires_at=NOW_EPOCH + 1)
    repo.create(old, NOW)

    # When a new job with the same id is created
    with pytest.raises(ConditionFailed) as lost:
        repo.create(new_job().model_copy(update={"id": old.id}), NOW)

    # Then the live job wins and is reported as current
    assert lost.value.current == old
    assert repo.get(old.id) == old


# ----------------------------------------------------------------------------------- update


def claim_change(at: datetime) -> JobUpdate:
    return JobUpdate(
        status=JobStatus.RUNNING,
        started_at=at,
        updated_at=at,
        increment_attempts=True,
    )


def test_update_applies_the_change_when_the_expectation_holds(
    repo: DynamoJobRepository,
) -> None:
    # Given a queued job
    job = new_job()
    repo.create(job, NOW)
    later = NOW + timedelta(seconds=3)

    # When it is claimed under the expectation "ann's, queued, no attempts yet"
    updated = repo.update(
        job.id,
        claim_change(later),
        Precondition(owner="ann", status_in=QUEUED, attempts=0),
    )

    # Then the returned job is the stored one: running, one attempt, started now
    expected = job.model_copy(
        update={
            "status": JobStatus.RUNNING,
            "attempts": 1,
            "started_at": later,
            "updated_at": later,
        }
    )
    assert updated == expected
    assert repo.get(job.id) == expected


def test_update_fails_with_the_current_job_when_the_expectation_does_not_hold(
    repo: DynamoJobRepository,
) -> None:
    # Given a queued job of ann with no attempts
    job = new_job()
    repo.create(job, NOW)
    wrong = {
        "other owner": Precondition(owner="bob", status_in=QUEUED),
        "other status": Precondition(owner="ann", status_in=RUNNING),
        "other attempts": Precondition(owner="ann", status_in=QUEUED, attempts=1),
    }
    for case, expect in wrong.items():
        # When an update expects another owner, status or attempt count
        with pytest.raises(ConditionFailed) as lost:
            repo.update(job.id, claim_change(NOW), expect)

        # Then it fails carrying the job as stored, and nothing changed
        assert lost.value.current == job, case
        assert repo.get(job.id) == job, case


def test_update_expecting_one_of_several_statuses(repo: DynamoJobRepository) -> None:
    # Given a running job
    job = new_job(status=JobStatus.RUNNING, attempts=1)
    repo.create(job, NOW)

    # When an update accepts queued or running
    updated = repo.update(
        job.id,
        JobUpdate(status=JobStatus.SUCCEEDED, result={"ok": 0.1}),
        Precondition(owner="ann", status_in=QUEUED | RUNNING),
    )

    # Then it applies
    assert (updated.status, updated.result) == (JobStatus.SUCCEEDED, {"ok": 0.1})


def test_update_of_a_missing_id_fails_with_no_current_job_and_creates_nothing(
    repo: DynamoJobRepository,
) -> None:
    # Given an id nobody stored
    job_id = uuid.uuid4().hex

    # When it is updated
    with pytest.raises(ConditionFailed) as lost:
        repo.update(
            job_id, claim_change(NOW), Precondition(owner="ann", status_in=QUEUED)
        )

    # Then the condition fails with no current job and no item appears
    assert lost.value.current is None
    assert repo.get(job_id) is None


def test_update_with_none_removes_the_attribute(
    repo: DynamoJobRepository, moto_stack: MotoStack
) -> None:
    # Given a queued job carrying the error of a failed attempt
    job = new_job(attempts=1, error=JobError(type="Boom", message="first try"))
    repo.create(job, NOW)

    # When the next attempt succeeds and clears the error
    updated = repo.update(
        job.id,
        JobUpdate(status=JobStatus.SUCCEEDED, error=None, result=[1]),
        Precondition(owner="ann", status_in=QUEUED, attempts=1),
    )

    # Then the error attribute is gone from the item
    assert updated.error is None
    assert "error" not in raw_item(moto_stack, job.id)


def test_the_status_index_holds_a_job_exactly_while_its_status_is_one_kept_there(
    repo: DynamoJobRepository, moto_stack: MotoStack
) -> None:
    # Given a queued job
    job = new_job()
    repo.create(job, NOW)
    assert "owner_status" not in raw_item(moto_stack, job.id)
    path = [
        (QUEUED, JobStatus.RUNNING),
        (RUNNING, JobStatus.FAILED),
        (frozenset({JobStatus.FAILED}), JobStatus.QUEUED),
        (QUEUED, JobStatus.RUNNING),
        (RUNNING, JobStatus.SUCCEEDED),
    ]
    for before, after in path:
        # When its status changes
        repo.update(
            job.id,
            JobUpdate(status=after),
            Precondition(owner="ann", status_in=before),
        )

        # Then the item carries the status index key only in the statuses it keeps, and every
        # status listing (through that index or the owner's) finds it exactly in its status
        item = raw_item(moto_stack, job.id)
        if after in INDEXED_STATUSES:
            assert item["owner_status"] == {"S": f"ann#{after}"}
        else:
            assert "owner_status" not in item
        for status in JobStatus:
            found, _ = repo.query("ann", JobFilter(status=status), 10, None, NOW)
            assert ids(found) == ([job.id] if status is after else []), status


def test_the_indexes_hold_keys_and_type_only(
    repo: DynamoJobRepository, moto_stack: MotoStack
) -> None:
    # Given a failed job with a payload and an error
    job = new_job(status=JobStatus.FAILED, error=JobError(type="E", message="m"))
    repo.create(job, NOW)

    # When each index is read directly
    for index, key_name, key in (
        ("by_owner", "owner", "ann"),
        ("by_owner_status", "owner_status", "ann#failed"),
    ):
        entries = moto_stack.dynamodb.query(
            TableName=moto_stack.table,
            IndexName=index,
            KeyConditionExpression="#k = :k",
            ExpressionAttributeNames={"#k": key_name},
            ExpressionAttributeValues={":k": {"S": key}},
        )["Items"]

        # Then the entry is the keys and the type: the payload, error and status never are
        assert [set(entry) for entry in entries] == [{"id", "sk", "type", key_name}]


def test_a_status_among_many_others_is_listed_in_full_pages_exactly_once(
    repo: DynamoJobRepository,
) -> None:
    # Given 7 queued jobs spread among 250 succeeded ones (statuses the status index skips)
    jobs = [
        new_job(
            status=JobStatus.QUEUED if age % 37 == 0 else JobStatus.SUCCEEDED, age_s=age
        )
        for age in range(250)
    ]
    create_all(repo, jobs)
    queued = [job for job in jobs if job.status is JobStatus.QUEUED]
    assert len(queued) == 7

    # When ann follows the pages of her queued jobs, two at a time
    found, pages = list_all(repo, "ann", JobFilter(status=JobStatus.QUEUED), 2)

    # Then each comes back once, newest first, and every page but the last is full
    assert ids(found) == newest_first(queued)
    assert all(len(page) == 2 for page in pages[:-1])


# ------------------------------------------------------------------------------------ query


def test_query_lists_newest_first(repo: DynamoJobRepository) -> None:
    # Given jobs stored in an order unrelated to their age
    jobs = [new_job(age_s=age) for age in (30, 10, 50, 0, 20, 40)]
    create_all(repo, jobs)

    # When ann lists them
    found, start = repo.query("ann", JobFilter(), 10, None, NOW)

    # Then they come newest first and the listing is complete
    assert ids(found) == newest_first(jobs)
    assert start is None


def test_query_pages_cover_every_job_exactly_once(repo: DynamoJobRepository) -> None:
    # Given seven jobs of ann
    jobs = [new_job(age_s=age) for age in range(7)]
    create_all(repo, jobs)
    for limit in (1, 2, 3, 7, 8):
        # When ann follows the resume keys to the end
        found, pages = list_all(repo, "ann", JobFilter(), limit)

        # Then every job appears exactly once, newest first, and only the last page may be short
        assert ids(found) == newest_first(jobs), limit
        assert all(len(page) == limit for page in pages[:-1]), limit


def test_query_by_status(repo: DynamoJobRepository) -> None:
    # Given jobs in every status
    jobs = [
        new_job(status=status, age_s=age)
        for age, status in enumerate(list(JobStatus) * 2)
    ]
    create_all(repo, jobs)

    # When ann lists each status
    for status in JobStatus:
        found, _ = list_all(repo, "ann", JobFilter(status=status), 3)

        # Then only the jobs in that status come back, newest first
        assert ids(found) == newest_first([j for j in jobs if j.status is status])


def test_query_by_type(repo: DynamoJobRepository) -> None:
    # Given jobs of two types
    jobs = [
        new_job(job_type=job_type, age_s=age)
        for age, job_type in enumerate(["echo", "sleep", "http.request"] * 3)
    ]
    create_all(repo, jobs)

    # When ann lists the sleep jobs
    found, _ = list_all(repo, "ann", JobFilter(type="sleep"), 2)

    # Then only those come back, newest first
    assert ids(found) == newest_first([j for j in jobs if j.type == "sleep"])


def test_query_by_status_and_type(repo: DynamoJobRepository) -> None:
    # Given jobs of two types in two statuses
    jobs = [
        new_job(job_type=job_type, status=status, age_s=age)
        for age, (job_type, status) in enumerate(
            [
                ("echo", JobStatus.QUEUED),
                ("sleep", JobStatus.QUEUED),
                ("echo", JobStatus.SUCCEEDED),
                ("sleep", JobStatus.SUCCEEDED),
            ]
            * 3
        )
    ]
    create_all(repo, jobs)

    # When ann lists the succeeded echo jobs
    found, _ = list_all(
        repo, "ann", JobFilter(status=JobStatus.SUCCEEDED, type="echo"), 2
    )

    # Then exactly those come back, newest first
    expected = [j for j in jobs if j.type == "echo" and j.status is JobStatus.SUCCEEDED]
    assert ids(found) == newest_first(expected)


def test_query_hides_expired_jobs(repo: DynamoJobRepository) -> None:
    # Given three succeeded echo jobs, two of them at or past their expiry (set by an update)
    jobs = [new_job(status=JobStatus.SUCCEEDED, age_s=age) for age in range(3)]
    create_all(repo, jobs)
    for job, expires_at in zip(
        jobs, [NOW_EPOCH - 1, NOW_EPOCH, NOW_EPOCH + 60], strict=True
    ):
        repo.update(
            job.id,
            JobUpdate(expires_at=expires_at),
            Precondition(owner="ann", status_in=frozenset({JobStatus.SUCCEEDED})),
        )
    for case, job_filter in FILTERS.items():
        # When ann lists them
        found, _ = list_all(repo, "ann", job_filter, 2)

        # Then only the job whose expiry is still ahead is listed
        assert ids(found) == [jobs[2].id], case


def test_query_never_returns_another_owners_jobs(repo: DynamoJobRepository) -> None:
    # Given succeeded echo jobs of ann and bob, interleaved in time
    anns = [
        new_job(owner="ann", status=JobStatus.SUCCEEDED, age_s=a) for a in (0, 2, 4, 6)
    ]
    bobs = [
        new_job(owner="bob", status=JobStatus.SUCCEEDED, age_s=a) for a in (1, 3, 5, 7)
    ]
    create_all(repo, anns + bobs)
    for case, job_filter in FILTERS.items():
        # When each lists with the filter
        found_ann, _ = list_all(repo, "ann", job_filter, 3)
        found_bob, _ = list_all(repo, "bob", job_filter, 3)

        # Then each sees exactly their own jobs, and a third owner sees none
        assert ids(found_ann) == newest_first(anns), case
        assert ids(found_bob) == newest_first(bobs), case
        assert repo.query("carol", job_filter, 10, None, NOW) == ([], None), case


NOISE = 25
"""Filtered-out jobs in front of the wanted ones: more than one bounded call reads."""


def _filtered_type(repo: DynamoJobRepository) -> tuple[JobFilter, list[Job]]:
    # The newest failed jobs are all of another type than the one asked for.
    failed = JobStatus.FAILED
    noise = [
        new_job(job_type="sleep", status=failed, age_s=age) for age in range(NOISE)
    ]
    wanted = [
        new_job(job_type="echo", status=failed, age_s=age) for age in (100, 101, 102)
    ]
    create_all(repo, noise + wanted)
    return JobFilter(status=failed, type="echo"), wanted


def _filtered_expiry(repo: DynamoJobRepository) -> tuple[JobFilter, list[Job]]:
    # The newest jobs have all expired (TTL has not deleted them yet).
    noise = [
        new_job(status=JobStatus.SUCCEEDED, age_s=age, expires_at=NOW_EPOCH - 1)
        for age in range(NOISE)
    ]
    wanted = [new_job(status=JobStatus.SUCCEEDED, age_s=age) for age in (100, 101, 102)]
    create_all(repo, noise + wanted)
    return JobFilter(), wanted


@pytest.mark.parametrize(
    "given", [_filtered_type, _filtered_expiry], ids=["type", "expiry"]
)
def test_a_page_of_filtered_out_items_still_returns_a_resume_key(
    repo: DynamoJobRepository,
    given: Any,
) -> None:
    # Given more filtered-out jobs in front than one call may read (limit x page bound)
    job_filter, wanted = given(repo)
    limit = 2
    assert limit * MAX_PAGES_PER_LIST < NOISE

    # When ann asks for the first page
    first, start = repo.query("ann", job_filter, limit, None, NOW)

    # Then the call stops after its bounded reads with an empty page and a key to resume from
    assert first == []
    assert start is not None

    # And following the keys reaches every wanted job exactly once, in a bounded number of calls
    found: list[JobSummary] = []
    for _ in range(PAGE_BOUND):
        page, start = repo.query("ann", job_filter, limit, start, NOW)
        assert len(page) <= limit
        found.extend(page)
        if start is None:
            break
    assert start is None
    assert ids(found) == newest_first(wanted)


def test_owners_whose_identity_holds_the_separator_get_partitions_of_their_own(
    repo: DynamoJobRepository,
) -> None:
    # Given a job of "alice#x" (an OIDC `sub` may contain `#`) and one of "alice"
    theirs = new_job(owner="alice#x", job_type="echo")
    mine = new_job(owner="alice", job_type="echo", age_s=1)
    create_all(repo, [theirs, mine])

    # When alice lists type "x#echo" (the old partition of alice#x's echo jobs), and echo
    spelled, _ = list_all(repo, "alice", JobFilter(type="x#echo"), 10)
    echo, _ = list_all(repo, "alice", JobFilter(type="echo"), 10)

    # Then the table itself returns only her own
    assert spelled == []
    assert ids(echo) == [mine.id]
    assert ids(list_all(repo, "alice#x", JobFilter(type="echo"), 10)[0]) == [theirs.id]
