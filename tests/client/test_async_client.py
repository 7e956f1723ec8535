"""`AsyncClient` against the real API app in-process (httpx's ASGITransport): every method,
paging, the error mapping, retries, wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from jobline_client import (
    AsyncClient,
    Conflict,
    InvalidRequest,
    JobNotFound,
    JobStatus,
    ServiceUnavailable,
    Unauthorized,
    WaitTimeout,
)

from tests.client.conftest import BASE_URL, FAIL_TYPE, FAST, Stack
from tests.client.transports import Answer, AsyncScriptedTransport, LoseAnswer, Refuse

T = TypeVar("T")
UNKNOWN_ID = "0" * 32
NewClient = Callable[..., AsyncClient]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run the test's coroutine on a loop of its own, never the thread's current loop:
    `asyncio.run` leaves "no current event loop" behind, and Mangum (the API handler's tests,
    later in the session) calls `asyncio.get_event_loop()`."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def test_submit_get_and_the_worker(new_async_client: NewClient, stack: Stack) -> None:
    async def scenario() -> None:
        async with new_async_client() as client:
            # When alice submits a job and the worker runs it
            job = await client.submit("echo", {"hello": "world"}, max_attempts=2)
            assert (job.status, job.max_attempts) == (JobStatus.QUEUED, 2)
            stack.run(job.id)

            # Then reading it back shows the result
            done = await client.get(job.id)
            assert (done.status, done.result) == (
                JobStatus.SUCCEEDED,
                {"hello": "world"},
            )
            assert len(done.history) == 1

    run(scenario())


def test_list_follows_the_cursor(
    new_async_client: NewClient, async_scripted: AsyncScriptedTransport
) -> None:
    async def scenario() -> None:
        async with new_async_client() as client:
            ids = [(await client.submit("echo", {"n": n})).id for n in range(5)]
            async_scripted.sent.clear()

            listed = [job.id async for job in client.list(page_size=2)]
            limited = [job.id async for job in client.list(limit=3, page_size=2)]
            filtered = [job.id async for job in client.list(status="succeeded")]

            assert listed == ids[::-1]
            assert limited == ids[::-1][:3]
            assert filtered == []
            assert [s.query["limit"] for s in async_scripted.sent] == [
                *("2", "2", "2"),
                *("2", "1"),
                "100",
            ]
            page = await client.list_page(limit=4)
            assert len(page.items) == 4 and page.next_cursor

    run(scenario())


def test_cancel_retry_and_their_conflicts(
    new_async_client: NewClient, stack: Stack
) -> None:
    async def scenario() -> None:
        async with new_async_client() as client:
            queued = await client.submit("echo", {})
            assert (await client.cancel(queued.id)).status is JobStatus.CANCELLED
            with pytest.raises(Conflict):
                await client.cancel(queued.id)

            requeued = await client.retry(queued.id)
            assert (requeued.status, requeued.attempts) == (JobStatus.QUEUED, 0)
            with pytest.raises(Conflict):
                await client.retry(queued.id)

            failed = await client.submit(FAIL_TYPE, {})
            stack.run(failed.id)
            assert (await client.retry(failed.id)).status is JobStatus.QUEUED

    run(scenario())


def test_job_types(new_async_client: NewClient) -> None:
    async def scenario() -> None:
        async with new_async_client() as client:
            names = [info.name for info in await client.job_types()]
            assert {"echo", "sleep", "http.request"} <= set(names)

    run(scenario())


def test_wait_reports_changes_and_times_out(
    new_async_client: NewClient, stack: Stack
) -> None:
    async def scenario() -> None:
        async with new_async_client() as client:
            # A job nobody runs: wait gives up with its last state
            stuck = await client.submit("echo", {})
            with pytest.raises(WaitTimeout) as raised:
                await client.wait(stuck.id, timeout=0.05)
            assert raised.value.job.status is JobStatus.QUEUED

            # A job that ends: wait returns it, on_progress saw the states
            job = await client.submit("echo", {"x": 1})
            seen: list[str] = []
            stack.start(job.id)
            stack.report(job.id, 10.0)
            task = asyncio.create_task(
                client.wait(
                    job.id, timeout=10, on_progress=lambda j: seen.append(j.status)
                )
            )
            await asyncio.sleep(0.02)
            stack.finish(job.id, result={"x": 1})
            done = await task
            assert done.result == {"x": 1}
            assert seen == ["running", "succeeded"]

    run(scenario())


def test_error_mapping(new_async_client: NewClient) -> None:
    async def scenario() -> None:
        async with new_async_client() as client:
            with pytest.raises(JobNotFound):
                await client.get(UNKNOWN_ID)
            with pytest.raises(InvalidRequest) as raised:
                await client.submit("teleport", {})
            assert raised.value.details[0]["loc"] == ["body", "type"]
        async with new_async_client(dev_user=None) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.list_page()

    run(scenario())


def test_a_503_is_retried_with_the_same_idempotency_key(
    new_async_client: NewClient, async_scripted: AsyncScriptedTransport, stack: Stack
) -> None:
    async def scenario() -> None:
        async_scripted.faults.extend([Answer(503), Refuse(), LoseAnswer()])
        async with new_async_client() as client:
            job = await client.submit("echo", {"n": 1})

        assert len(async_scripted.sent) == 4
        assert len({s.headers["idempotency-key"] for s in async_scripted.sent}) == 1
        assert stack.job_count() == 1
        assert stack.enqueued() == [job.id]

    run(scenario())


def test_a_lasting_outage_is_service_unavailable(
    new_async_client: NewClient, async_scripted: AsyncScriptedTransport
) -> None:
    async def scenario() -> None:
        async_scripted.faults.extend([Refuse()] * 4)
        async with new_async_client() as client:
            with pytest.raises(ServiceUnavailable) as raised:
                await client.job_types()
        assert raised.value.status is None
        assert isinstance(raised.value.__cause__, httpx.ConnectError)

    run(scenario())


def test_a_lost_cancel_answer_is_read_back(
    new_async_client: NewClient, async_scripted: AsyncScriptedTransport
) -> None:
    async def scenario() -> None:
        async with new_async_client() as client:
            job = await client.submit("echo", {})
            async_scripted.faults.append(LoseAnswer())
            assert (await client.cancel(job.id)).status is JobStatus.CANCELLED

    run(scenario())


def test_the_async_client_takes_the_same_settings() -> None:
    with pytest.raises(ValueError):
        AsyncClient("ftp://example.invalid", **FAST)
    client = AsyncClient(BASE_URL + "/", token="t", **FAST)
    assert client.base_url == BASE_URL
    run(client.aclose())
