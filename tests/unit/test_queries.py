"""Reads: a job by id, listings (filters, paging, signed cursors), expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jobline.errors import InvalidCursor, JobNotFound
from jobline.limits import LIST_PAGE_MAX_BYTES, MAX_PAGE_SIZE, SUMMARY_TEXT_CHARS
from jobline.models import (
    Job,
    JobError,
    JobFilter,
    JobStatus,
    JobSummary,
    Progress,
    SubmitRequest,
)
from jobline.service import JobService

from tests.support.builders import ANN, BOB, UNKNOWN_ID, Fakes, echo_request
from tests.support.fakes import FakeClock
from tests.support.services import build_fake_service

# ------------------------------------------------------------------------------- get


def test_get_returns_the_callers_job(fakes: Fakes) -> None:
    service, _, _ = fakes
    job = service.submit(ANN, echo_request()).job
    assert service.get(ANN, job.id) == job


@pytest.mark.parametrize(
    "job_id", [UNKNOWN_ID, "not-a-job-id", "", "../etc", "A" * 32, "0" * 33]
)
def test_get_unknown_or_malformed_id_is_not_found(fakes: Fakes, job_id: str) -> None:
    service, _, _ = fakes
    with pytest.raises(JobNotFound):
        service.get(ANN, job_id)


def test_get_another_owners_job_is_not_found(fakes: Fakes) -> None:
    service, _, _ = fakes
    # Given bob's job
    job = service.submit(BOB, echo_request()).job
    # When ann asks for it, then it does not exist for her
    with pytest.raises(JobNotFound):
        service.get(ANN, job.id)


def test_get_expired_job_is_not_found(clock: FakeClock) -> None:
    # Given a cancelled job kept for one day
    service, repo, _ = build_fake_service(clock=clock, retention=timedelta(days=1))
    job = service.submit(ANN, echo_request()).job
    service.cancel(ANN, job.id)
    assert service.get(ANN, job.id).status is JobStatus.CANCELLED

    # When the retention has passed (the item may still be in the table)
    clock.advance(timedelta(days=1, seconds=5))

    # Then readers treat it as gone
    assert [j.id for j in repo.jobs] == [job.id]
    with pytest.raises(JobNotFound):
        service.get(ANN, job.id)


# ------------------------------------------------------------------------------ list


def _submit_many(service: JobService, owner: str, count: int) -> list[Job]:
    return [service.submit(owner, echo_request({"i": i})).job for i in range(count)]


def test_list_is_newest_first_and_per_owner(fakes: Fakes) -> None:
    service, _, _ = fakes
    # Given jobs of ann and bob, interleaved in time
    ann_jobs = []
    for i in range(3):
        ann_jobs.append(service.submit(ANN, echo_request({"i": i})).job)
        service.submit(BOB, echo_request({"i": i}))

    # When ann lists her jobs
    page = service.list_jobs(ANN, JobFilter())

    # Then she sees only hers, newest first, on one page
    assert [job.id for job in page.items] == [job.id for job in reversed(ann_jobs)]
    assert page.next_cursor is None


def test_list_of_an_owner_without_jobs_is_empty(fakes: Fakes) -> None:
    service, _, _ = fakes
    service.submit(BOB, echo_request())
    page = service.list_jobs(ANN, JobFilter())
    assert (page.items, page.next_cursor) == ([], None)


def test_list_filters_by_status_type_and_both(fakes: Fakes) -> None:
    service, _, _ = fakes
    # Given a queued echo, a cancelled echo and a queued sleep
    queued_echo = service.submit(ANN, echo_request()).job
    cancelled_echo = service.cancel(ANN, service.submit(ANN, echo_request()).job.id)
    queued_sleep = service.submit(
        ANN, SubmitRequest(type="sleep", payload={"seconds": 1})
    ).job

    def ids(job_filter: JobFilter) -> list[str]:
        return [job.id for job in service.list_jobs(ANN, job_filter).items]

    # Then each filter selects exactly its jobs, newest first
    assert ids(JobFilter(status=JobStatus.QUEUED)) == [queued_sleep.id, queued_echo.id]
    assert ids(JobFilter(status=JobStatus.CANCELLED)) == [cancelled_echo.id]
    assert ids(JobFilter(type="echo")) == [cancelled_echo.id, queued_echo.id]
    assert ids(JobFilter(status=JobStatus.QUEUED, type="echo")) == [queued_echo.id]
    assert ids(JobFilter(status=JobStatus.SUCCEEDED)) == []
    assert ids(JobFilter(type="http.request")) == []


def test_list_hides_expired_jobs(clock: FakeClock) -> None:
    # Given an old cancelled job past its retention and a fresh job
    service, _, _ = build_fake_service(clock=clock, retention=timedelta(days=1))
    old = service.submit(ANN, echo_request()).job
    service.cancel(ANN, old.id)
    clock.advance(timedelta(days=2))
    fresh = service.submit(ANN, echo_request()).job

    # When ann lists her jobs, then only the fresh one shows
    assert [job.id for job in service.list_jobs(ANN, JobFilter()).items] == [fresh.id]


@pytest.mark.parametrize(("count", "limit"), [(7, 3), (6, 3), (1, 1), (5, 100)])
def test_pagination_covers_every_job_exactly_once(
    fakes: Fakes, count: int, limit: int
) -> None:
    service, _, _ = fakes
    # Given ann's jobs and some of bob's
    jobs = _submit_many(service, ANN, count)
    _submit_many(service, BOB, 2)

    # When ann follows the cursors to the end
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = service.list_jobs(ANN, JobFilter(), limit=limit, cursor=cursor)
        pages += 1
        assert len(page.items) <= limit
        seen.extend(job.id for job in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break

    # Then she saw each of her jobs once, newest first (a full last page may need one more read)
    assert seen == [job.id for job in reversed(jobs)]
    assert pages == count // limit + 1


def test_a_listing_is_summaries_and_its_pages_stop_at_their_byte_budget(
    fakes: Fakes,
) -> None:
    service, repo, _ = fakes
    # Given 100 jobs whose summaries are as large as a summary gets (error type and message at
    # the summary's cut, progress message at its bound, all of characters JSON escapes 6-fold)
    jobs = _submit_many(service, ANN, MAX_PAGE_SIZE)
    text = "\x01" * SUMMARY_TEXT_CHARS
    for job in jobs:
        repo.put(
            job.model_copy(
                update={
                    "status": JobStatus.FAILED,
                    "error": JobError(type=text, message=text * 2),
                    "progress": Progress(
                        percent=1, message=text, updated_at=job.created_at
                    ),
                }
            )
        )

    # When ann follows the cursors asking for 100 a page
    pages: list[list[JobSummary]] = []
    cursor: str | None = None
    while True:
        page = service.list_jobs(ANN, JobFilter(), MAX_PAGE_SIZE, cursor)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break

    # Then no page passed the budget, so the first came back short with a cursor, and she saw
    # every job once, each summary saying its error was cut
    sizes = [sum(summary.encoded_size() for summary in page) for page in pages]
    assert max(sizes) <= LIST_PAGE_MAX_BYTES
    assert 0 < len(pages[0]) < MAX_PAGE_SIZE
    listed = [summary for page in pages for summary in page]
    assert [s.id for s in listed] == [job.id for job in reversed(jobs)]
    assert all(s.error_truncated for s in listed)
    assert listed[0].error == JobError(type=text, message=text)


def test_a_tampered_cursor_is_rejected(fakes: Fakes) -> None:
    service, _, _ = fakes
    _submit_many(service, ANN, 3)
    cursor = service.list_jobs(ANN, JobFilter(), limit=1).next_cursor
    assert cursor is not None
    tampered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")

    with pytest.raises(InvalidCursor):
        service.list_jobs(ANN, JobFilter(), limit=1, cursor=tampered)
    with pytest.raises(InvalidCursor):
        service.list_jobs(ANN, JobFilter(), limit=1, cursor="garbage")


def test_a_cursor_only_works_for_its_owner_and_filter(fakes: Fakes) -> None:
    service, _, _ = fakes
    # Given a cursor from ann's unfiltered listing
    _submit_many(service, ANN, 3)
    cursor = service.list_jobs(ANN, JobFilter(), limit=1).next_cursor
    assert cursor is not None

    # Then bob cannot use it, nor can ann with another filter
    with pytest.raises(InvalidCursor):
        service.list_jobs(BOB, JobFilter(), limit=1, cursor=cursor)
    with pytest.raises(InvalidCursor):
        service.list_jobs(ANN, JobFilter(type="echo"), limit=1, cursor=cursor)
    with pytest.raises(InvalidCursor):
        service.list_jobs(
            ANN, JobFilter(status=JobStatus.QUEUED), limit=1, cursor=cursor
        )


@pytest.mark.parametrize("limit", [0, -1, 101])
def test_list_limit_outside_bounds_is_refused(fakes: Fakes, limit: int) -> None:
    service, _, _ = fakes
    with pytest.raises(ValueError, match="limit"):
        service.list_jobs(ANN, JobFilter(), limit=limit)


@pytest.mark.parametrize("limit", [1, 100])
def test_list_limit_bounds_are_accepted(fakes: Fakes, limit: int) -> None:
    service, _, _ = fakes
    jobs = _submit_many(service, ANN, 2)
    page = service.list_jobs(ANN, JobFilter(), limit=limit)
    assert [job.id for job in page.items] == [job.id for job in reversed(jobs)][:limit]


# ------------------------------------------------------------ owners with separators


@pytest.mark.parametrize(
    ("owner", "job_filter", "intruder", "intruder_filter"),
    [
        # alice#x's echo jobs sit in the partition "alice#x#echo", which alice asking for
        # type "x#echo" named too
        ("alice#x", JobFilter(type="echo"), "alice", JobFilter(type="x#echo")),
        # an escape that left `%` alone would make these two one
        ("a%23b", JobFilter(type="echo"), "a#b", JobFilter(type="echo")),
    ],
)
def test_an_owner_never_lists_another_owners_jobs_through_a_separator(
    fakes: Fakes,
    owner: str,
    job_filter: JobFilter,
    intruder: str,
    intruder_filter: JobFilter,
) -> None:
    service, _, _ = fakes
    # Given a job of an owner whose identity contains the key separator (any OIDC `sub` may)
    job = service.submit(owner, echo_request()).job
    assert [j.id for j in service.list_jobs(owner, job_filter).items] == [job.id]

    # When another identity lists with a filter that spells the same composite key
    page = service.list_jobs(intruder, intruder_filter)

    # Then it sees none of them
    assert page.items == []
