"""Every route's answer fits in what Lambda may answer, with the largest legal data, and nothing in
it is cut without saying so.

AWS documents the limit in its Lambda quotas
(https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html): "Invocation payload
(request and response): 6 MB each for synchronous" (`jobline.limits.LAMBDA_MAX_SYNC_RESPONSE_BYTES`).
A bigger answer is refused by the Runtime API (413): the runtime client exits, API Gateway answers
500 and the execution environment is thrown away. What counts is the function's response as the
runtime sends it: Mangum's `{"statusCode", "headers", "body", ...}` serialized to JSON, where the
body is itself a JSON string escaped again (awslambdaric's marshaller: `ensure_ascii=False` on
python3.12, `True` on earlier runtimes; both are measured here).

The data, per string content that escapes worst (quotes and control characters double or sextuple
in JSON, non-ASCII text triples under `ensure_ascii`): 100 jobs, each with a payload at the
deployment's `max_payload_bytes`, a result at `max_result_bytes`, a progress message at its bound,
and an error plus `MAX_HISTORY` attempts whose messages fill what the DynamoDB item has left under
its 400 KB; at the default settings and at the settings' bounds (more than an item could hold).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import structlog
from jobline.aws.items import job_to_item
from jobline.limits import (
    DYNAMODB_MAX_ITEM_BYTES,
    LAMBDA_MAX_SYNC_RESPONSE_BYTES,
    LIST_PAGE_MAX_BYTES,
    MAX_HISTORY,
    MAX_PAGE_SIZE,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_BYTES_BOUND,
    MAX_RESULT_BYTES,
    MAX_RESULT_BYTES_BOUND,
    SUMMARY_TEXT_CHARS,
)
from jobline.models import Attempt, Job, JobError, JobStatus, Progress
from jobline.validation import canonical_json
from jobline_api.dependencies import get_job_service
from jobline_api.handler import app as handler_app
from jobline_api.handler import lambda_handler
from jobline_api.routes import router as api_router
from jobline_api.ui import ASSETS
from jobline_api.ui import router as ui_router
from starlette.routing import Route

from tests.conftest import FakeLambdaContext
from tests.support.events import http_api_event
from tests.support.fakes import START, FakeClock
from tests.support.services import build_fake_service
from tests.unit.api.calls import Fakes

OWNER = "ann"
JOBS = MAX_PAGE_SIZE
CHARACTERS = {
    "ascii": "a",
    "quote": '"',
    "control": "\x01",
    "latin": "é",
    "astral": "\U0001f600",
}
"""One character per way JSON text grows: as is, escaped (`\\"`, `\\u0001`), two and four bytes
of UTF-8 (six and twelve bytes under `ensure_ascii`)."""
SETTINGS = {
    "defaults": (MAX_PAYLOAD_BYTES, MAX_RESULT_BYTES),
    "bounds": (MAX_PAYLOAD_BYTES_BOUND, MAX_RESULT_BYTES_BOUND),
}
CORRELATION_ID = "c" * 128
"""The longest correlation id the API keeps (`jobline_api.correlation.USABLE`)."""


# ---------------------------------------------------------------------------- the data


def text_of(character: str, canonical_bytes: int) -> str:
    """A string of `character` (padded with ASCII) whose canonical JSON takes exactly
    `canonical_bytes` bytes, quotes included."""
    each = len(json.dumps(character, ensure_ascii=False).encode()) - 2
    count, pad = divmod(canonical_bytes - 2, each)
    text = character * count + "a" * pad
    assert len(canonical_json(text).encode()) == canonical_bytes
    return text


def value_at(character: str, canonical_bytes: int) -> dict[str, str]:
    """`{"data": ...}` whose canonical JSON takes exactly `canonical_bytes` bytes: a payload or a
    result at its limit."""
    value = {"data": text_of(character, canonical_bytes - len('{"data":}'))}
    assert len(canonical_json(value).encode()) == canonical_bytes
    return value


def _attribute_bytes(attr: dict[str, Any]) -> int:
    """DynamoDB's size of an attribute value (its documented item-size rules)."""
    [(kind, value)] = attr.items()
    if kind == "S":
        return len(value.encode())
    if kind == "N":
        return (len(value.lstrip("-").replace(".", "")) + 1) // 2 + 1
    if kind == "M":
        return 3 + sum(
            len(name.encode()) + _attribute_bytes(v) + 1 for name, v in value.items()
        )
    if kind == "L":
        return 3 + sum(_attribute_bytes(v) + 1 for v in value)
    return 1


def item_bytes(job: Job) -> int:
    """The size DynamoDB counts for the job's item."""
    return sum(
        len(name.encode()) + _attribute_bytes(attr)
        for name, attr in job_to_item(job).items()
    )


def largest(job: Job, character: str, result_bytes: int, status: JobStatus) -> Job:
    """`job` (its payload at the limit) with every other field as large as it may be: a result
    at `result_bytes`, the progress message at its bound, and an error and `MAX_HISTORY`
    attempts (one fewer when failed: the most a job may hold and still be retried) whose
    messages take what the item has left under DynamoDB's 400 KB, half for the job's error, half
    shared by the attempts'. At the settings' bounds payload and result leave nothing: the error
    then takes twice what a summary keeps of it, and the item is over what DynamoDB holds."""
    at = START
    attempts = MAX_HISTORY - 1 if status is JobStatus.FAILED else MAX_HISTORY

    def with_messages(error_chars: int, attempt_chars: int) -> Job:
        error = JobError(type="HandlerError", message=character * error_chars)
        history = tuple(
            Attempt(
                attempt=n + 1,
                started_at=at,
                finished_at=at,
                error=JobError(type="HandlerError", message=character * attempt_chars),
                request_id="r" * 36,
                duration_ms=1,
            )
            for n in range(attempts)
        )
        return job.model_copy(
            update={
                "status": status,
                "result": value_at(character, result_bytes),
                "error": error,
                "history": history,
                "attempts": attempts,
                "max_attempts": MAX_HISTORY,
                "progress": Progress(
                    percent=50.0, message=character * 1024, updated_at=at
                ),
                "correlation_id": CORRELATION_ID,
                "started_at": at,
                "finished_at": None if status is JobStatus.RUNNING else at,
            }
        )

    room = DYNAMODB_MAX_ITEM_BYTES - item_bytes(with_messages(0, 0))
    if room <= 0:
        return with_messages(2 * SUMMARY_TEXT_CHARS, 16)
    each = len(character.encode())
    filled = with_messages(room // 2 // each, room // 2 // attempts // each)
    assert DYNAMODB_MAX_ITEM_BYTES - 2 * attempts * each < item_bytes(filled)
    assert item_bytes(filled) <= DYNAMODB_MAX_ITEM_BYTES
    return filled


# ---------------------------------------------------------------------------- the calls


@dataclass
class Answers:
    """Every answer of the run: its size as Lambda's response, per route."""

    sizes: dict[str, list[int]] = field(default_factory=dict)
    routes: set[str] = field(default_factory=set)

    def call(
        self,
        route: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        status: int = 200,
    ) -> Any:
        """Invoke the handler as API Gateway does; check and record the answer's size."""
        event = http_api_event(
            method,
            path,
            body=None if body is None else json.dumps(body),
            headers=headers,
            sub=OWNER,
            query=urlencode(query or {}),
        )
        response = lambda_handler(event, FakeLambdaContext())
        assert response["statusCode"] == status, (path, response.get("body", "")[:300])
        size = max(
            len(json.dumps(response, ensure_ascii=ascii_only).encode())
            for ascii_only in (False, True)
        )
        assert size < LAMBDA_MAX_SYNC_RESPONSE_BYTES, (route, size)
        self.sizes.setdefault(route, []).append(size)
        self.routes.add(route)
        content_type = response.get("headers", {}).get("content-type", "")
        if content_type.startswith("application/json") and response.get("body"):
            return json.loads(response["body"])
        return response.get("body")


@pytest.fixture
def lambda_fakes(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Fakes, int, int]]:
    """The Lambda handler's own app over a fake service at `request.param`'s settings."""
    payload_bytes, result_bytes = SETTINGS[request.param]
    fakes = build_fake_service(
        clock=FakeClock(step=timedelta(milliseconds=1)),
        max_payload_bytes=payload_bytes,
        max_result_bytes=result_bytes,
    )
    monkeypatch.setenv("JOBLINE_ALLOW_DEV_IDENTITY", "false")
    handler_app.dependency_overrides[get_job_service] = lambda: fakes[0]
    try:
        yield fakes, payload_bytes, result_bytes
    finally:
        handler_app.dependency_overrides.pop(get_job_service, None)
        structlog.contextvars.clear_contextvars()


def _route_paths() -> set[str]:
    """Every path the app serves: its own (the OpenAPI document, the docs pages) and its
    routers' (the API's, the dashboard's)."""
    routes = [*handler_app.routes, *api_router.routes, *ui_router.routes]
    return {route.path for route in routes if isinstance(route, Route)}


@pytest.mark.parametrize("character", sorted(CHARACTERS))
@pytest.mark.parametrize("lambda_fakes", sorted(SETTINGS), indirect=True)
def test_every_route_answers_within_lambdas_limit_with_the_largest_legal_data(
    lambda_fakes: tuple[Fakes, int, int], character: str
) -> None:
    (_, repo, _), payload_bytes, result_bytes = lambda_fakes
    char = CHARACTERS[character]
    answers = Answers()
    payload = value_at(char, payload_bytes)

    # Given 100 jobs submitted with a payload at the limit (each answer is the job, whole)
    ids: list[str] = []
    for n in range(JOBS):
        submitted = answers.call(
            "POST /jobs",
            "POST",
            "/jobs",
            body={"type": "echo", "payload": payload},
            headers={"Idempotency-Key": f"key-{n}", "X-Correlation-Id": CORRELATION_ID},
            status=202,
        )
        assert submitted["payload"] == payload
        ids.append(submitted["id"])

    # And each then as large as a job gets: result, progress, error and a full history (the
    # first running, the second failed, the rest succeeded)
    statuses = [JobStatus.RUNNING, JobStatus.FAILED]
    stored: dict[str, Job] = {}
    for n, job in enumerate(sorted(repo.jobs, key=lambda j: ids.index(j.id))):
        status = statuses[n] if n < len(statuses) else JobStatus.SUCCEEDED
        stored[job.id] = largest(job, char, result_bytes, status)
        repo.put(stored[job.id])
    running, failed = ids[0], ids[1]

    # When every route is called: the job page reads a job whole, nothing cut
    for job_id in (running, failed, ids[-1]):
        whole = answers.call("GET /jobs/{job_id}", "GET", f"/jobs/{job_id}")
        assert_whole(whole, stored[job_id])
    replay = answers.call(
        "POST /jobs",
        "POST",
        "/jobs",
        body={"type": "echo", "payload": payload},
        headers={"Idempotency-Key": f"key-{JOBS - 1}"},
    )
    assert_whole(replay, stored[ids[-1]])
    cancelled = answers.call(
        "POST /jobs/{job_id}/cancel",
        "POST",
        f"/jobs/{running}/cancel",
        status=202,
    )
    assert cancelled["payload"] == payload and len(cancelled["history"]) == MAX_HISTORY
    retried = answers.call("POST /jobs/{job_id}/retry", "POST", f"/jobs/{failed}/retry")
    assert retried["payload"] == payload
    assert len(retried["history"]) == MAX_HISTORY - 1

    # And the listing, page by page: summaries within the page's budget, short pages with a
    # cursor, every job once
    for query in ({}, {"status": "succeeded"}, {"type": "echo"}):
        listed: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(JOBS + 1):
            params = {**query, "limit": MAX_PAGE_SIZE}
            if cursor is not None:
                params["cursor"] = cursor
            page = answers.call("GET /jobs", "GET", "/jobs", query=params)
            body_bytes = len(json.dumps(page, ensure_ascii=False).encode())
            assert body_bytes <= LIST_PAGE_MAX_BYTES + 200
            listed.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        expected = [
            job_id
            for job_id in reversed(ids)
            if query.get("status") in (None, repo.get(job_id).status)  # type: ignore[union-attr]
        ]
        assert [item["id"] for item in listed] == expected, query
        for item in listed:
            assert_summarised(item, repo.get(item["id"]))  # type: ignore[arg-type]

    # And the routes that hold no job
    answers.call("GET /health", "GET", "/health")
    types = answers.call("GET /job-types", "GET", "/job-types")
    assert [t["name"] for t in types] == sorted(t["name"] for t in types)
    answers.call("GET /openapi.json", "GET", "/openapi.json")
    for docs in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        answers.call(f"GET {docs}", "GET", docs)
    answers.call("GET /ui", "GET", "/ui")
    answers.call("GET /ui/", "GET", "/ui/", status=307)
    for name in ASSETS:
        answers.call("GET /ui/{name}", "GET", f"/ui/{name}")

    # Then every route of the app was called (a new route joins this test), each answer under
    # 6 MB; the whole job with room to spare
    assert {route.split(" ", 1)[1] for route in answers.routes} == _route_paths()
    assert max(answers.sizes["GET /jobs/{job_id}"]) < LAMBDA_MAX_SYNC_RESPONSE_BYTES / 2


def assert_whole(answer: dict[str, Any], job: Job) -> None:
    """The job's own answer holds all of it: payload, result, error and history as stored."""
    assert answer["payload"] == job.payload
    assert answer["result"] == job.result
    assert job.error is not None and answer["error"] == job.error.model_dump()
    assert [a["error"]["message"] for a in answer["history"]] == [
        a.error.message for a in job.history if a.error is not None
    ]
    assert len(answer["history"]) == len(job.history)


def assert_summarised(item: dict[str, Any], job: Job) -> None:
    """A summary leaves out payload, result and history (its schema says so), and cuts the
    error only to `SUMMARY_TEXT_CHARS`, saying so."""
    assert {"payload", "result", "history"}.isdisjoint(item)
    if job.error is None:  # the retried job
        assert (item["error"], item["error_truncated"]) == (None, False)
    else:
        cut = len(job.error.message) > SUMMARY_TEXT_CHARS
        assert item["error_truncated"] is cut
        assert item["error"]["message"] == job.error.message[:SUMMARY_TEXT_CHARS]
    progress = (
        None
        if job.progress is None
        else job.progress.model_dump(mode="json", exclude={"seq"})  # (internal)
    )
    assert item["progress"] == progress
    assert (item["status"], item["attempts"]) == (job.status, job.attempts)
