"""Listings on the template's table in moto: summaries read through the batch read's projection,
pages bounded by their encoded size that resume without skipping or repeating a job, and cursors
of earlier versions' shapes refused with 400 through the API, before DynamoDB sees them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from jobline.aws.repository import DynamoJobRepository
from jobline.cursor import CursorCodec
from jobline.limits import INLINE_DATA_BYTES, LIST_PAGE_MAX_BYTES, MAX_PAGE_SIZE
from jobline.models import (
    Attempt,
    Job,
    JobError,
    JobFilter,
    JobStatus,
    JobSummary,
    Progress,
)
from jobline.ports import StartKey
from jobline.validation import canonical_json
from jobline_api.app import create_app
from jobline_api.errors import CURSOR_DETAIL

from tests.conftest import MotoStack

NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
CURSOR_KEY = b"test-cursor-secret-0123456789abcdef"
"""The key `tests.conftest.aws_env` configures (JOBLINE_CURSOR_SECRET)."""
PAGE_BOUND = 200
FILTERS = {
    "all": JobFilter(),
    "not indexed status": JobFilter(status=JobStatus.SUCCEEDED),
    "indexed status": JobFilter(status=JobStatus.FAILED),
    "type": JobFilter(type="echo"),
}


@pytest.fixture
def repo(moto_stack: MotoStack) -> DynamoJobRepository:
    return DynamoJobRepository(moto_stack.dynamodb, moto_stack.table)


@pytest.fixture
def client(moto_stack: MotoStack) -> Iterator[TestClient]:
    with TestClient(create_app(allow_dev_identity=True)) as test_client:
        yield test_client


def heavy_job(n: int, status: JobStatus, owner: str = "ann") -> Job:
    """A job with a payload, a result, a history and an error message far longer than a
    summary keeps, created `n` seconds before NOW."""
    created = NOW - timedelta(seconds=n)
    error = JobError(type="Boom", message="\x01" * 3000)
    return Job(
        id=uuid.uuid4().hex,
        owner=owner,
        type="echo" if n % 3 else "sleep",
        status=status,
        payload={"data": "p" * 2000},
        result={"data": "r" * 2000} if status is JobStatus.SUCCEEDED else None,
        error=error,
        attempts=2,
        history=(
            Attempt(attempt=1, started_at=created, finished_at=created, error=error),
        ),
        progress=Progress(percent=10, message="m" * 1024, updated_at=created),
        created_at=created,
        updated_at=created,
    )


def test_a_listing_reads_summaries_without_payload_result_or_history(
    repo: DynamoJobRepository,
) -> None:
    # Given a job holding a payload, a result, a history and a long error
    job = heavy_job(0, JobStatus.SUCCEEDED)
    repo.create(job, NOW)

    # When ann lists her jobs
    [found], start = repo.query("ann", JobFilter(), 10, None, NOW)

    # Then she gets its summary: every other field, the error cut and flagged
    assert found == JobSummary.of(job)
    assert found.error is not None and found.error_truncated
    assert start is None


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_pages_bounded_by_bytes_list_every_job_once(
    repo: DynamoJobRepository, name: str
) -> None:
    # Given 40 jobs of ann (mixed statuses and types) and some of bob
    statuses = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.QUEUED]
    jobs = [heavy_job(n, statuses[n % 3]) for n in range(40)]
    for job in [*jobs, *(heavy_job(n, JobStatus.FAILED, "bob") for n in range(5))]:
        repo.create(job, NOW)
    job_filter = FILTERS[name]
    size = JobSummary.of(jobs[0]).encoded_size()

    # When ann follows the resume keys with room for about three summaries a page
    pages: list[list[JobSummary]] = []
    start: StartKey | None = None
    for _ in range(PAGE_BOUND):
        page, start = repo.query(
            "ann", job_filter, MAX_PAGE_SIZE, start, NOW, max_bytes=size * 7 // 2
        )
        pages.append(page)
        if start is None:
            break

    # Then every page stayed in its budget, and she saw each of her matching jobs exactly once,
    # newest first
    assert all(sum(s.encoded_size() for s in page) <= size * 7 // 2 for page in pages)
    expected = [
        job.id
        for job in jobs
        if (job_filter.status is None or job.status is job_filter.status)
        and (job_filter.type is None or job.type == job_filter.type)
    ]
    assert [s.id for page in pages for s in page] == expected
    assert len(pages) > len(expected) // 4


def _payload_at(limit: int) -> dict[str, str]:
    payload = {"data": "x" * (limit - len('{"data":""}'))}
    assert len(canonical_json(payload).encode()) == limit
    return payload


def test_a_page_of_a_hundred_jobs_at_the_payload_limit_is_a_page_of_summaries(
    client: TestClient,
) -> None:
    # Given 100 jobs submitted with the largest payload their items hold (a larger one is in
    # the data bucket: the item holds less)
    payload = _payload_at(INLINE_DATA_BYTES)
    ids = [
        client.post(
            "/jobs", json={"type": "echo", "payload": payload}, headers=ANN
        ).json()["id"]
        for _ in range(MAX_PAGE_SIZE)
    ]

    # When ann lists a hundred
    response = client.get("/jobs", params={"limit": MAX_PAGE_SIZE}, headers=ANN)

    # Then the page holds them all, without their payloads: a few hundred bytes each
    page = response.json()
    assert [item["id"] for item in page["items"]] == ids[::-1]
    assert all("payload" not in item for item in page["items"])
    assert len(response.content) < LIST_PAGE_MAX_BYTES // 10


# ------------------------------------------------------------ cursors of earlier versions

ANN = {"X-Dev-User": "ann"}
HASHED = {"X-Dev-User": "ann#x"}
"""An owner whose identity holds the separator: its partitions were written unescaped before
708c358 (`ann#x#failed`), escaped since (`ann%23x#failed`)."""


def _sk(job_id: str) -> str:
    return f"2030-01-02T03:04:05.678901Z#{job_id}"


EARLIER_CURSORS: dict[str, tuple[dict[str, str], str, dict[str, str]]] = {
    # name: (headers, query, resume key signed into the cursor)
    "id only": (ANN, "", {"id": "0" * 32}),
    "empty": (ANN, "", {}),
    "unknown attribute": (ANN, "", {"bogus": "1"}),
    "one more attribute": (
        ANN,
        "",
        {"id": "0" * 32, "sk": _sk("0" * 32), "owner": "ann", "shard": "1"},
    ),
    "missing sk": (ANN, "", {"id": "0" * 32, "owner": "ann"}),
    "by_owner_type (type filter, before e036521)": (
        ANN,
        "type=echo",
        {"id": "0" * 32, "sk": _sk("0" * 32), "owner_type": "ann#echo"},
    ),
    "status index of every status (before bbbb750)": (
        ANN,
        "status=queued",
        {"id": "0" * 32, "sk": _sk("0" * 32), "owner_status": "ann#queued"},
    ),
    "separator unescaped (before 708c358)": (
        HASHED,
        "status=failed",
        {"id": "0" * 32, "sk": _sk("0" * 32), "owner_status": "ann#x#failed"},
    ),
}


@pytest.mark.parametrize("shape", sorted(EARLIER_CURSORS))
def test_a_cursor_of_an_earlier_shape_is_400_saying_to_start_again(
    client: TestClient, shape: str
) -> None:
    # Given jobs to list, and a cursor signed with the deployment's key around a resume key of
    # a shape this version does not give (issued before an upgrade)
    headers, query, start = EARLIER_CURSORS[shape]
    for _ in range(2):
        client.post("/jobs", json={"type": "echo"}, headers=headers)
    params = dict(part.split("=") for part in query.split("&") if part)
    cursor = CursorCodec(CURSOR_KEY).encode(
        start, headers["X-Dev-User"], JobFilter.model_validate(params)
    )

    # When it is used on the table
    response = client.get("/jobs", params={**params, "cursor": cursor}, headers=headers)

    # Then it is 400, saying to start from the first page, not a 500
    assert response.status_code == 400
    assert response.json() == {"detail": CURSOR_DETAIL}
    assert "start from the first page" in CURSOR_DETAIL


def test_a_cursor_this_version_gave_still_resumes(client: TestClient) -> None:
    # The check refuses other shapes only: a cursor of this version goes on where it stopped
    ids = [
        client.post("/jobs", json={"type": "echo"}, headers=ANN).json()["id"]
        for _ in range(3)
    ]
    first = client.get("/jobs", params={"limit": 2}, headers=ANN).json()
    rest = client.get(
        "/jobs", params={"limit": 2, "cursor": first["next_cursor"]}, headers=ANN
    ).json()

    listed = [item["id"] for item in first["items"] + rest["items"]]
    assert listed == ids[::-1]
    start = CursorCodec(CURSOR_KEY).decode(first["next_cursor"], "ann", JobFilter())
    assert set(start) == {"id", "sk", "owner"} and start["id"] == ids[1]
