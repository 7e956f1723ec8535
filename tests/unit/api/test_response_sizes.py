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
in JSON, non-ASCII text triples under `ensure_ascii`): 100 jobs, each as large as a job may be
(`tests.support.largest`): payload and result at `INLINE_DATA_BYTES`, the largest a job's item
holds, error and history texts at their bounds, a progress message at its bound; and one job whose
payload (uploaded, at the deployment's `max_payload_bytes`) and result (at `max_result_bytes`) are
kept in the data bucket, which its answers link to instead of holding; at the default settings
and at the settings' bounds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import structlog
from jobline.limits import (
    INLINE_DATA_BYTES,
    LAMBDA_MAX_SYNC_RESPONSE_BYTES,
    LIST_PAGE_MAX_BYTES,
    MAX_HISTORY,
    MAX_PAGE_SIZE,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_BYTES_BOUND,
    MAX_REQUEST_BODY_BYTES,
    MAX_RESULT_BYTES,
    MAX_RESULT_BYTES_BOUND,
    SUMMARY_TEXT_CHARS,
)
from jobline.models import DataRef, Job, JobStatus
from jobline.usecases.claim_check import result_key
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
from tests.support.fakes import FakeClock, InMemoryBlobStore
from tests.support.largest import CHARACTERS, largest, value_at
from tests.support.services import build_fake_service
from tests.unit.api.calls import Fakes

OWNER = "ann"
JOBS = MAX_PAGE_SIZE
SETTINGS = {
    "defaults": (MAX_PAYLOAD_BYTES, MAX_RESULT_BYTES),
    "bounds": (MAX_PAYLOAD_BYTES_BOUND, MAX_RESULT_BYTES_BOUND),
}
CORRELATION_ID = "c" * 128
"""The longest correlation id the API keeps (`jobline_api.correlation.USABLE`)."""


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


@dataclass(frozen=True)
class LambdaFakes:
    """The fakes behind the Lambda handler's app, and the settings they run with."""

    fakes: Fakes
    blobs: InMemoryBlobStore
    payload_bytes: int
    result_bytes: int


@pytest.fixture
def lambda_fakes(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LambdaFakes]:
    """The Lambda handler's own app over a fake service at `request.param`'s settings."""
    payload_bytes, result_bytes = SETTINGS[request.param]
    blobs = InMemoryBlobStore()
    fakes = build_fake_service(
        clock=FakeClock(step=timedelta(milliseconds=1)),
        max_payload_bytes=payload_bytes,
        max_result_bytes=result_bytes,
        blobs=blobs,
    )
    monkeypatch.setenv("JOBLINE_ALLOW_DEV_IDENTITY", "false")
    handler_app.dependency_overrides[get_job_service] = lambda: fakes[0]
    try:
        yield LambdaFakes(fakes, blobs, payload_bytes, result_bytes)
    finally:
        handler_app.dependency_overrides.pop(get_job_service, None)
        structlog.contextvars.clear_contextvars()


def _route_paths() -> set[str]:
    """Every path the app serves: its own (the OpenAPI document, the docs pages) and its
    routers' (the API's, the dashboard's)."""
    routes = [*handler_app.routes, *api_router.routes, *ui_router.routes]
    return {route.path for route in routes if isinstance(route, Route)}


def upload(answers: Answers, blobs: InMemoryBlobStore, payload: Any) -> str:
    """Upload `payload` as a caller does (`POST /uploads`, then the form to the bucket)."""
    form = answers.call("POST /uploads", "POST", "/uploads", status=201)
    data = canonical_json(payload).encode()
    assert len(data) <= form["max_bytes"]
    sent = blobs.handle(
        httpx.Request(
            "POST",
            form["url"],
            data=form["fields"],
            files={"file": ("payload.json", data, "application/json")},
        )
    )
    assert sent.status_code == 204
    upload_id: str = form["upload_id"]
    return upload_id


@pytest.mark.parametrize("character", sorted(CHARACTERS))
@pytest.mark.parametrize("lambda_fakes", sorted(SETTINGS), indirect=True)
def test_every_route_answers_within_lambdas_limit_with_the_largest_legal_data(
    lambda_fakes: LambdaFakes, character: str
) -> None:
    (_, repo, _) = lambda_fakes.fakes
    char = CHARACTERS[character]
    answers = Answers()
    payload = value_at(char, INLINE_DATA_BYTES)
    large_payload = value_at(char, lambda_fakes.payload_bytes)

    # Given 100 jobs submitted with the largest payload a job's item holds, inline, and the
    # last with the largest payload the deployment takes, uploaded first (each answer is the
    # job: its data held, or linked to)
    ids: list[str] = []
    for n in range(JOBS):
        last = n == JOBS - 1
        body = (
            {
                "type": "echo",
                "payload_upload": upload(answers, lambda_fakes.blobs, large_payload),
            }
            if last
            else {"type": "echo", "payload": payload}
        )
        assert len(json.dumps(body).encode()) <= MAX_REQUEST_BODY_BYTES
        submitted = answers.call(
            "POST /jobs",
            "POST",
            "/jobs",
            body=body,
            headers={"Idempotency-Key": f"key-{n}", "X-Correlation-Id": CORRELATION_ID},
            status=202,
        )
        if last:
            assert submitted["payload"] is None
            assert submitted["payload_size"] == lambda_fakes.payload_bytes
        else:
            assert submitted["payload"] == payload
        ids.append(submitted["id"])

    # And each then as large as a job gets: result, progress, error and a full history (the
    # first running, the second failed, the rest succeeded); the last job's result, at the
    # deployment's limit, in the data bucket
    statuses = [JobStatus.RUNNING, JobStatus.FAILED]
    stored: dict[str, Job] = {}
    for n, job in enumerate(sorted(repo.jobs, key=lambda j: ids.index(j.id))):
        status = statuses[n] if n < len(statuses) else JobStatus.SUCCEEDED
        stored[job.id] = largest(job, char, status)
        if job.payload_ref is not None:
            ref = DataRef(
                key=result_key(job.id, "l" * 32),
                size=lambda_fakes.result_bytes,
                sha256="0" * 64,
            )
            stored[job.id] = stored[job.id].model_copy(
                update={
                    "payload": None,
                    "payload_ref": job.payload_ref,
                    "result": None,
                    "result_ref": ref,
                }
            )
        repo.put(stored[job.id])
    running, failed = ids[0], ids[1]

    # When every route is called: the job page reads a job whole, nothing cut
    for job_id in (running, failed, ids[-2], ids[-1]):
        whole = answers.call("GET /jobs/{job_id}", "GET", f"/jobs/{job_id}")
        assert_whole(whole, stored[job_id])
    replay = answers.call(
        "POST /jobs",
        "POST",
        "/jobs",
        body={"type": "echo", "payload": payload},
        headers={"Idempotency-Key": f"key-{JOBS - 2}"},
    )
    assert_whole(replay, stored[ids[-2]])
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
    """The job's own answer holds all of it: payload, result, error and history as stored, the
    data kept in the bucket as links (with its size and digest)."""
    assert answer["payload"] == job.payload
    assert answer["result"] == job.result
    for name, ref in (("payload", job.payload_ref), ("result", job.result_ref)):
        if ref is None:
            assert answer[f"{name}_url"] is None
        else:
            assert answer[f"{name}_url"].startswith("http")
            assert (answer[f"{name}_size"], answer[f"{name}_sha256"]) == (
                ref.size,
                ref.sha256,
            )
    assert job.error is not None and answer["error"] == job.error.model_dump()
    assert [a["error"]["message"] for a in answer["history"]] == [
        a.error.message for a in job.history if a.error is not None
    ]
    assert len(answer["history"]) == len(job.history)


def assert_summarised(item: dict[str, Any], job: Job) -> None:
    """A summary leaves out payload, result and history (its schema says so), and cuts the
    error only to `SUMMARY_TEXT_CHARS`, saying so."""
    assert not {"payload", "result", "history"} & {n.split("_")[0] for n in item}
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
