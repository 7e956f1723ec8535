"""Large data through the client and the CLI, in-process against the real API app: a payload whose
request would pass the API's 1 MiB is uploaded to the data bucket first, and a payload or result
the job links to is downloaded and checked, transparently, without the API's credentials."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jobline.limits import INLINE_DATA_BYTES, MAX_REQUEST_BODY_BYTES
from jobline_client import AsyncClient, Client, DataTransferFailed, Job
from jobline_client.cli import Connection, main

from tests.client.conftest import BASE_URL, FAST, OWNER, Stack
from tests.client.test_async_client import run
from tests.client.transports import ScriptedTransport, Sent
from tests.support.fakes import FAKE_DATA_HOST

MIB = 1024 * 1024
FOUR_MB = 4 * MIB
THIRTY_MB = 30 * MIB


def bulk(blob_bytes: int, result_bytes: int) -> dict[str, Any]:
    """A `bulk` payload of about `blob_bytes` asking for about `result_bytes` back."""
    return {"blob": "b" * blob_bytes, "result_bytes": result_bytes}


def to_bucket(scripted: ScriptedTransport) -> list[Sent]:
    return [
        sent
        for sent in scripted.sent
        if "/jobs" not in sent.path and "/uploads" not in sent.path
    ]


def api_calls(scripted: ScriptedTransport) -> list[str]:
    return [
        f"{sent.method} {sent.path}"
        for sent in scripted.sent
        if sent not in to_bucket(scripted)
    ]


def test_a_4_mb_payload_and_a_30_mb_result_round_trip_through_the_client(
    client: Client, stack: Stack, scripted: ScriptedTransport
) -> None:
    # Given a 4 MB payload asking for a 30 MB result
    payload = bulk(FOUR_MB, THIRTY_MB)

    # When alice submits it: her request would pass 1 MiB, so the client uploads it first
    job = client.submit("bulk", payload)
    assert job.payload == payload and job.payload_link is not None
    assert api_calls(scripted) == ["POST /uploads", "POST /jobs"]
    [upload] = to_bucket(scripted)
    submitted = json.loads(scripted.sent[-1].body)
    assert "payload" not in submitted and submitted["payload_upload"]
    assert len(scripted.sent[-1].body) < 1024

    # And the worker runs it, then she reads it
    stack.run(job.id)
    done = client.get(job.id)

    # Then the handler saw the payload whole, and the result came back whole and checked,
    # fetched from the bucket; nothing sent there carried her identity
    assert done.status.value == "succeeded"
    assert (
        done.result["blob_sha256"]
        == hashlib.sha256(payload["blob"].encode()).hexdigest()
    )
    assert len(done.result["data"]) == THIRTY_MB
    assert done.result_link is not None and done.result_link.size > THIRTY_MB
    assert done.payload == payload
    fetched = [sent for sent in to_bucket(scripted) if sent.method == "GET"]
    assert len(fetched) == 2  # the payload and the result, once each
    for sent in [upload, *fetched]:
        assert sent.headers.get("host") == FAKE_DATA_HOST
        assert "authorization" not in sent.headers and "x-dev-user" not in sent.headers


def test_a_payload_within_a_request_is_sent_inline(
    client: Client, scripted: ScriptedTransport, stack: Stack
) -> None:
    # A body just under 1 MiB goes as it is (the API keeps its payload in the bucket itself)
    payload = bulk(MAX_REQUEST_BODY_BYTES - 100, 0)

    job = client.submit("bulk", payload)

    assert api_calls(scripted) == ["POST /jobs"]
    assert to_bucket(scripted) == []
    assert job.payload == payload
    assert stack.blobs.puts and stack.blobs.puts[0].startswith("payloads/")


def test_a_download_that_is_not_the_jobs_data_is_refused(
    client: Client, stack: Stack
) -> None:
    job = client.submit("bulk", bulk(0, 2 * INLINE_DATA_BYTES))
    stack.run(job.id)
    [key] = [k for k in stack.blobs.objects if k.startswith("results/")]
    stack.blobs.objects[key] = stack.blobs.objects[key].replace(b"rrr", b"rrx", 1)

    with pytest.raises(DataTransferFailed, match="not the job's"):
        client.get(job.id)


def test_an_expired_link_is_renewed_by_reading_the_job_again(
    client: Client, stack: Stack, scripted: ScriptedTransport
) -> None:
    job = client.submit("bulk", bulk(0, 2 * INLINE_DATA_BYTES))
    stack.run(job.id)
    stack.blobs.answer_next = [403]
    scripted.sent.clear()

    done = client.get(job.id)

    assert len(done.result["data"]) == 2 * INLINE_DATA_BYTES
    assert api_calls(scripted) == [f"GET /jobs/{job.id}"] * 2
    assert [s.method for s in to_bucket(scripted)] == ["GET", "GET"]


def test_a_link_refused_for_another_reason_is_an_error(
    client: Client, stack: Stack
) -> None:
    job = client.submit("bulk", bulk(0, 2 * INLINE_DATA_BYTES))
    stack.run(job.id)
    stack.blobs.answer_next = [404]

    with pytest.raises(DataTransferFailed) as failed:
        client.get(job.id)

    assert failed.value.status == 404
    assert "X-Amz-Signature" not in str(failed.value)


def test_waiting_downloads_the_data_once_at_the_end(
    client: Client, stack: Stack, scripted: ScriptedTransport
) -> None:
    job = client.submit("bulk", bulk(0, 2 * INLINE_DATA_BYTES))
    polls: list[int] = []

    def worker_after_two_polls(sent: Any) -> None:
        if sent.url.path == f"/jobs/{job.id}":
            polls.append(1)
            if len(polls) == 3:
                stack.run(job.id)

    scripted.before = worker_after_two_polls
    done = client.wait(job.id, timeout=30)

    assert len(polls) == 3
    assert len(done.result["data"]) == 2 * INLINE_DATA_BYTES
    assert [s.method for s in to_bucket(scripted)] == ["GET"]


def test_the_async_client_uploads_and_downloads_alike(
    new_async_client: Callable[..., AsyncClient], stack: Stack
) -> None:
    payload = bulk(2 * MIB, 3 * MIB)

    async def scenario() -> Job:
        async with new_async_client() as jobline:
            job = await jobline.submit("bulk", payload)
            assert job.payload_link is not None
            stack.run(job.id)
            return await jobline.get(job.id)

    done = run(scenario())

    assert done.payload == payload
    assert len(done.result["data"]) == 3 * MIB
    assert [r.headers.get("authorization") for r in stack.blobs.handled] == [None] * 3


def test_the_cli_round_trips_a_4_mb_payload_file_and_a_30_mb_result(
    scripted: ScriptedTransport, stack: Stack, tmp_path: Path
) -> None:
    # Given a 4 MB payload in a file
    payload = bulk(FOUR_MB, THIRTY_MB)
    source = tmp_path / "payload.json"
    source.write_text(json.dumps(payload), encoding="utf-8")

    def factory(connection: Connection) -> Client:
        return Client(BASE_URL, None, connection.dev_user, transport=scripted, **FAST)

    def jobline(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(
            list(argv),
            client_factory=factory,
            environ={"JOBLINE_DEV_USER": OWNER},
            stdout=out,
            stderr=io.StringIO(),
        )
        return code, out.getvalue()

    # When it is submitted from the command line, run, and read back as JSON and as a table
    code, out = jobline("submit", "bulk", f"@{source}", "--output", "json")
    assert code == 0
    job_id = json.loads(out)["id"]
    stack.run(job_id)
    code, out = jobline("get", job_id, "--output", "json")
    _, table = jobline("get", job_id)

    # Then the JSON holds the payload and the result whole (downloaded, checked), the table a
    # preview of each with its size
    assert code == 0
    shown = json.loads(out)
    assert shown["payload"] == payload
    assert len(shown["result"]["data"]) == THIRTY_MB
    assert shown["result_url"] and shown["payload_url"]
    [result_row] = [line for line in table.splitlines() if line.startswith("result")]
    assert "--output json prints it whole" in result_row and len(result_row) < 400
