"""The HTTP API over a fake service: every route, every status code, every error as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from httpx import Response
from jobline.cursor import CursorCodec
from jobline.errors import StorageUnavailable
from jobline.models import Attempt, Job, JobError, JobFilter, JobStatus, Progress
from jobline.service import JobService
from jobline_api.app import create_app
from jobline_api.dependencies import get_job_service
from jobline_api.handler import app as handler_app
from jobline_api.handler import lambda_handler

from tests.conftest import FakeLambdaContext
from tests.fakes import (
    CURSOR_SECRET,
    START,
    FakeClock,
    InMemoryJobQueue,
    InMemoryJobRepository,
    build_fake_service,
    http_api_event,
)
from tests.jobfields import PUBLIC_FIELDS

ANN = {"X-Dev-User": "ann"}
BOB = {"X-Dev-User": "bob"}
UNKNOWN_ID = "0" * 32

Fakes = tuple[JobService, InMemoryJobRepository, InMemoryJobQueue]


@pytest.fixture
def fakes() -> Fakes:
    return build_fake_service(
        clock=FakeClock(step=timedelta(seconds=1)), max_payload_bytes=4096
    )


@pytest.fixture
def client(fakes: Fakes) -> Iterator[TestClient]:
    service = fakes[0]
    app = create_app(service_factory=lambda: service, allow_dev_identity=True)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _detail(response: Response) -> Any:
    """The error detail; every error answer is JSON `{"detail": ...}` and nothing else."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["detail"]
    return body["detail"]


def _submit(client: TestClient, headers: dict[str, str] = ANN, **body: Any) -> Response:
    response: Response = client.post(
        "/jobs", json={"type": "echo", **body}, headers=headers
    )
    return response


def _nothing_stored(fakes: Fakes) -> bool:
    _, repo, queue = fakes
    return repo.jobs == [] and queue.sent == []


# ------------------------------------------------------------------------- health


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_job_types_lists_name_description_and_input_schema(client: TestClient) -> None:
    response = client.get("/job-types", headers=ANN)

    assert response.status_code == 200
    types = response.json()
    assert [t["name"] for t in types] == ["echo", "http.request", "sleep"]
    assert all(set(t) == {"name", "description", "input_schema"} for t in types)
    sleep = types[2]
    assert sleep["input_schema"]["properties"]["seconds"]["maximum"] == 600
    assert sleep["input_schema"]["required"] == ["seconds"]


# ------------------------------------------------------------------------- submit


def test_submit_is_accepted_with_location(client: TestClient, fakes: Fakes) -> None:
    _, repo, queue = fakes
    # When ann submits an echo job
    response = _submit(client, payload={"x": 0.1}, max_attempts=4, delay_seconds=5)

    # Then it is accepted, located, stored and enqueued; the body shows only public fields
    assert response.status_code == 202
    job = response.json()
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert set(job) == set(PUBLIC_FIELDS)
    assert {k: job[k] for k in ("type", "status", "payload", "attempts")} == {
        "type": "echo",
        "status": "queued",
        "payload": {"x": 0.1},
        "attempts": 0,
    }
    assert (job["max_attempts"], job["result"], job["error"]) == (4, None, None)
    assert job["created_at"].endswith("Z")
    # And it shows when its first delivery is due, and no progress or attempts yet
    assert (job["created_at"], job["run_after"]) == (
        "2025-01-15T12:00:00Z",
        "2025-01-15T12:00:05Z",
    )
    assert (job["progress"], job["cancel_requested_at"], job["history"]) == (
        None,
        None,
        [],
    )
    assert [j.id for j in repo.jobs] == [job["id"]]
    assert [(s.message.job_id, s.delay_seconds) for s in queue.sent] == [(job["id"], 5)]


def test_whole_numbers_written_as_floats_are_integers(client: TestClient) -> None:
    # JSON Schema's integer (what the spec says) includes 5.0; text and booleans are not numbers
    response = _submit(client, max_attempts=5.0, delay_seconds=0.0)

    assert response.status_code == 202
    assert response.json()["max_attempts"] == 5


def test_submit_defaults(client: TestClient) -> None:
    response = client.post("/jobs", json={"type": "echo"}, headers=ANN)
    assert response.status_code == 202
    assert (response.json()["payload"], response.json()["max_attempts"]) == ({}, 3)


def test_idempotent_replay_is_200_with_the_same_job(
    client: TestClient, fakes: Fakes
) -> None:
    headers = {**ANN, "Idempotency-Key": "order-1"}
    first = _submit(client, headers, payload={"n": 1})

    again = _submit(client, headers, payload={"n": 1})

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert len(fakes[2].sent) == 1


def test_same_idempotency_key_with_another_body_is_409(
    client: TestClient, fakes: Fakes
) -> None:
    headers = {**ANN, "Idempotency-Key": "order-1"}
    _submit(client, headers, payload={"n": 1})

    response = _submit(client, headers, payload={"n": 2})

    assert response.status_code == 409
    assert "order-1" in _detail(response)
    assert len(fakes[1].jobs) == len(fakes[2].sent) == 1


def test_idempotency_keys_are_per_caller(client: TestClient, fakes: Fakes) -> None:
    ann = _submit(client, {**ANN, "Idempotency-Key": "k"})
    bob = _submit(client, {**BOB, "Idempotency-Key": "k"})

    assert (ann.status_code, bob.status_code) == (202, 202)
    assert ann.json()["id"] != bob.json()["id"]


def test_an_overlong_idempotency_key_is_422(client: TestClient, fakes: Fakes) -> None:
    response = _submit(client, {**ANN, "Idempotency-Key": "k" * 256})
    assert response.status_code == 422
    assert [d["loc"] for d in _detail(response)] == [["header", "idempotency-key"]]
    assert _nothing_stored(fakes)


def test_unknown_type_is_422_on_the_type_field(
    client: TestClient, fakes: Fakes
) -> None:
    response = client.post("/jobs", json={"type": "teleport"}, headers=ANN)

    assert response.status_code == 422
    [error] = _detail(response)
    assert (error["loc"], error["type"]) == (["body", "type"], "unknown_job_type")
    assert "echo" in error["msg"]
    assert _nothing_stored(fakes)


def test_invalid_payload_is_422_with_field_level_detail(
    client: TestClient, fakes: Fakes
) -> None:
    response = client.post(
        "/jobs", json={"type": "sleep", "payload": {"seconds": 601}}, headers=ANN
    )

    assert response.status_code == 422
    assert [(d["loc"], d["type"]) for d in _detail(response)] == [
        (["body", "payload", "seconds"], "less_than_equal")
    ]
    assert _nothing_stored(fakes)


def test_http_request_payload_errors_name_each_field(
    client: TestClient, fakes: Fakes
) -> None:
    response = client.post(
        "/jobs",
        json={"type": "http.request", "payload": {"url": "ftp://x", "method": "TRACE"}},
        headers=ANN,
    )

    assert response.status_code == 422
    assert sorted(tuple(d["loc"]) for d in _detail(response)) == [
        ("body", "payload", "method"),
        ("body", "payload", "url"),
    ]
    assert _nothing_stored(fakes)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "echo", "priority": "high"}, "priority"),
        ({"type": 7}, "type"),
        ({"type": ""}, "type"),
        ({"type": "x" * 129}, "type"),
        ({}, "type"),
        ({"type": "echo", "max_attempts": "three"}, "max_attempts"),
        ({"type": "echo", "max_attempts": 2.5}, "max_attempts"),
        ({"type": "echo", "max_attempts": 10**30}, "max_attempts"),
        ({"type": "echo", "max_attempts": 0}, "max_attempts"),
        ({"type": "echo", "max_attempts": 21}, "max_attempts"),
        ({"type": "echo", "delay_seconds": -1}, "delay_seconds"),
        ({"type": "echo", "delay_seconds": 901}, "delay_seconds"),
        ({"type": "echo", "delay_seconds": None}, "delay_seconds"),
        ({"type": "echo", "delay_seconds": 10**400}, "delay_seconds"),
        ({"type": "echo", "delay_seconds": False}, "delay_seconds"),
        ({"type": "echo", "max_attempts": "5"}, "max_attempts"),
        ({"type": "echo", "max_attempts": True}, "max_attempts"),
    ],
    ids=[
        "unknown-field",
        "type-not-text",
        "type-empty",
        "type-too-long",
        "type-missing",
        "attempts-text",
        "attempts-fraction",
        "attempts-huge",
        "attempts-zero",
        "attempts-21",
        "delay-negative",
        "delay-901",
        "delay-null",
        "delay-huge-int",
        "delay-false",
        "attempts-numeric-text",
        "attempts-true",
    ],
)
def test_invalid_request_fields_are_422(
    client: TestClient, fakes: Fakes, body: dict[str, Any], field: str
) -> None:
    response = client.post("/jobs", json=body, headers=ANN)

    assert response.status_code == 422
    assert [d["loc"] for d in _detail(response)] == [["body", field]]
    assert _nothing_stored(fakes)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"type": "echo", "delay_seconds": 1e400}', "delay_seconds"),
        ('{"type": "echo", "max_attempts": -1e400}', "max_attempts"),
        ('{"type": "echo", "max_attempts": NaN}', "max_attempts"),
        ('{"type": "echo", "payload": {"x": Infinity}}', "payload"),
    ],
    ids=["delay-1e400", "attempts-minus-1e400", "nan", "infinity-in-payload"],
)
def test_non_finite_numbers_are_422(
    client: TestClient, fakes: Fakes, raw: str, field: str
) -> None:
    response = client.post(
        "/jobs",
        content=raw,
        headers={**ANN, "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert all(d["loc"][:2] == ["body", field] for d in _detail(response))
    assert _nothing_stored(fakes)


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            '{"type": "echo", "payload": ' + _nested(300) + "}",
            "nests arrays and objects deeper than 64 levels",
        ),
        (
            '{"type": "echo", "payload": {"a": ' + "[" * 80 + "]" * 80 + "}}",
            "nests arrays and objects deeper than 64 levels",
        ),
        ('{"type": "echo", "payload": {"x": "\\ud800"}}', "not valid Unicode"),
        ('{"type": "echo", "payload": {"\\udfff": 1}}', "not valid Unicode"),
    ],
    ids=["nested-300", "arrays-80", "lone-surrogate-value", "lone-surrogate-key"],
)
def test_payloads_that_cannot_be_stored_as_json_are_422(
    client: TestClient, fakes: Fakes, raw: str, message: str
) -> None:
    # Given a body that is valid JSON but whose payload no serializer takes back
    response = client.post(
        "/jobs", content=raw, headers={**ANN, "Content-Type": "application/json"}
    )

    # Then it is refused on the payload field, before the service stores anything
    assert response.status_code == 422
    [error] = _detail(response)
    assert error["loc"] == ["body", "payload"]
    assert message in error["msg"]
    assert _nothing_stored(fakes)


def test_a_payload_64_levels_deep_is_accepted(client: TestClient) -> None:
    raw = '{"type": "echo", "payload": ' + _nested(63) + "}"
    response = client.post(
        "/jobs", content=raw, headers={**ANN, "Content-Type": "application/json"}
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"[1, 2]", b'"echo"', b"\xff\xfe\x00", b'{"type": "echo",}'],
    ids=["broken", "empty", "array", "string", "not-utf8", "trailing-comma"],
)
def test_malformed_bodies_are_4xx_json(
    client: TestClient, fakes: Fakes, raw: bytes
) -> None:
    response = client.post(
        "/jobs", content=raw, headers={**ANN, "Content-Type": "application/json"}
    )

    assert 400 <= response.status_code < 500
    assert _detail(response)
    assert _nothing_stored(fakes)


def test_too_large_payload_is_413(client: TestClient, fakes: Fakes) -> None:
    response = _submit(client, payload={"blob": "x" * 5000})

    assert response.status_code == 413
    assert "4096" in _detail(response)
    assert _nothing_stored(fakes)


def test_a_queue_outage_does_not_fail_a_submit(
    client: TestClient, fakes: Fakes
) -> None:
    # The submit's one write is the row; the outbox sends the message once SQS is back
    fakes[2].fail_with = "ServiceUnavailable"

    response = _submit(client)

    assert response.status_code == 202
    assert [job.id for job in fakes[1].jobs] == [response.json()["id"]]
    assert [job.id for job in fakes[1].stream.undelivered] == [response.json()["id"]]


# ----------------------------------------------------------------------------- get


def test_get_job(client: TestClient) -> None:
    job = _submit(client, payload={"n": 10**30}).json()

    response = client.get(f"/jobs/{job['id']}", headers=ANN)

    assert (response.status_code, response.json()) == (200, job)
    assert response.json()["payload"] == {"n": 10**30}


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "not-a-job", "x" * 500, "%00"])
def test_unknown_or_malformed_id_is_404(client: TestClient, job_id: str) -> None:
    response = client.get(f"/jobs/{job_id}", headers=ANN)
    assert response.status_code == 404
    assert isinstance(_detail(response), str)


def test_another_callers_job_is_404(client: TestClient) -> None:
    job = _submit(client, BOB).json()

    assert client.get(f"/jobs/{job['id']}", headers=ANN).status_code == 404
    assert client.post(f"/jobs/{job['id']}/cancel", headers=ANN).status_code == 404
    assert client.get("/jobs", headers=ANN).json() == {"items": [], "next_cursor": None}


# ---------------------------------------------------------------------------- list


def test_list_jobs_newest_first_with_filters(client: TestClient) -> None:
    # Given two echo jobs and a sleep job, the second echo cancelled
    first = _submit(client).json()["id"]
    second = _submit(client).json()["id"]
    sleeper = client.post(
        "/jobs", json={"type": "sleep", "payload": {"seconds": 1}}, headers=ANN
    ).json()["id"]
    client.post(f"/jobs/{second}/cancel", headers=ANN)

    def ids(query: str) -> list[str]:
        response = client.get(f"/jobs{query}", headers=ANN)
        assert response.status_code == 200
        assert response.json()["next_cursor"] is None
        return [job["id"] for job in response.json()["items"]]

    # Then listings are newest first and filtered as asked
    assert ids("") == [sleeper, second, first]
    assert ids("?status=queued") == [sleeper, first]
    assert ids("?status=cancelled") == [second]
    assert ids("?type=echo") == [second, first]
    assert ids("?type=echo&status=queued") == [first]
    assert ids("?status=succeeded") == []


def test_list_pages_with_the_cursor(client: TestClient) -> None:
    submitted = [_submit(client, payload={"i": i}).json()["id"] for i in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/jobs", params=params, headers=ANN).json()
        seen.extend(job["id"] for job in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(submitted))


def test_a_tampered_cursor_is_400(client: TestClient) -> None:
    for _ in range(3):
        _submit(client)
    cursor = client.get("/jobs?limit=1", headers=ANN).json()["next_cursor"]
    tampered = ("B" if cursor[0] == "A" else "A") + cursor[1:]

    for bad in (tampered, "garbage", "é.é"):
        response = client.get("/jobs", params={"cursor": bad}, headers=ANN)
        assert response.status_code == 400
        assert _detail(response) == "invalid cursor"
    other_filter = client.get(
        "/jobs", params={"cursor": cursor, "limit": 1, "type": "echo"}, headers=ANN
    )
    assert other_filter.status_code == 400
    other_owner = client.get("/jobs", params={"cursor": cursor}, headers=BOB)
    assert other_owner.status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs?stauts=failed"),
        ("GET", f"/jobs/{UNKNOWN_ID}?verbose=1"),
        ("POST", f"/jobs/{UNKNOWN_ID}/cancel?force=true"),
        ("GET", "/job-types?all=1"),
    ],
)
def test_an_unknown_query_parameter_is_422(
    client: TestClient, method: str, path: str
) -> None:
    # A misspelt filter is an error, not a listing of every job
    response = client.request(method, path, headers=ANN)

    assert response.status_code == 422
    [error] = _detail(response)
    assert (error["loc"][0], error["type"]) == ("query", "extra_forbidden")


@pytest.mark.parametrize(
    "start",
    [{"id": "x"}, {}, {"bogus": "1"}, {"id": "0" * 32, "sk": "s", "owner": "bob"}],
    ids=["id-only", "empty", "unknown-attribute", "another-partition"],
)
def test_a_signed_cursor_with_a_start_key_storage_refuses_is_400(
    client: TestClient, start: dict[str, str]
) -> None:
    # Given a cursor signed with the deployment's key (leaked, or the public default) around a
    # resume key that is not one the table would give
    cursor = CursorCodec(CURSOR_SECRET).encode(start, "ann", JobFilter())

    # When it is used
    response = client.get("/jobs", params={"cursor": cursor}, headers=ANN)

    # Then it is an invalid cursor, not a server error
    assert (response.status_code, _detail(response)) == (400, "invalid cursor")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=1e400", "limit"),
        ("status=paused", "status"),
        ("cursor=" + "a" * 2049, "cursor"),
    ],
)
def test_invalid_list_parameters_are_422(
    client: TestClient, query: str, field: str
) -> None:
    response = client.get(f"/jobs?{query}", headers=ANN)
    assert response.status_code == 422
    assert [d["loc"] for d in _detail(response)] == [["query", field]]


@pytest.mark.parametrize("limit", [1, 100])
def test_limit_bounds_are_accepted(client: TestClient, limit: int) -> None:
    assert client.get(f"/jobs?limit={limit}", headers=ANN).status_code == 200


# -------------------------------------------------------------------------- cancel


def test_cancel_then_cancel_again(client: TestClient, fakes: Fakes) -> None:
    job_id = _submit(client).json()["id"]

    cancelled = client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    again = client.post(f"/jobs/{job_id}/cancel", headers=ANN)

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert again.status_code == 409
    assert "cancelled" in _detail(again)
    assert [job.status for job in fakes[1].jobs] == [JobStatus.CANCELLED]


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nope"])
def test_cancel_unknown_job_is_404(client: TestClient, job_id: str) -> None:
    response = client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    assert response.status_code == 404
    assert _detail(response)


def _put_running(fakes: Fakes, job_id: str) -> None:
    """Move a submitted job to running, as a worker's claim would."""
    repo = fakes[1]
    job = repo.get(job_id)
    assert job is not None
    repo.put(
        job.model_copy(
            update={
                "status": JobStatus.RUNNING,
                "attempts": 1,
                "started_at": START,
                "lease_until": START + timedelta(minutes=2),
                "run_after": None,
            }
        )
    )


def test_cancel_of_a_running_job_is_accepted_as_a_request(
    client: TestClient, fakes: Fakes
) -> None:
    # Given ann's job, running in a worker
    job_id = _submit(client).json()["id"]
    _put_running(fakes, job_id)

    # When she cancels it
    response = client.post(f"/jobs/{job_id}/cancel", headers=ANN)

    # Then it is accepted (202): still running, with the request recorded
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["cancel_requested_at"], body["finished_at"]) == (
        "running",
        "2025-01-15T12:00:01Z",
        None,
    )
    [stored] = fakes[1].jobs
    assert stored.cancel_requested_at == START + timedelta(seconds=1)

    # And GET shows the request too
    assert client.get(f"/jobs/{job_id}", headers=ANN).json() == body


def test_get_shows_progress_and_history(client: TestClient, fakes: Fakes) -> None:
    # Given ann's job on its second attempt, the first having failed
    job_id = _submit(client).json()["id"]
    repo = fakes[1]
    job = repo.get(job_id)
    assert job is not None
    repo.put(
        job.model_copy(
            update={
                "status": JobStatus.RUNNING,
                "attempts": 2,
                "progress": Progress(
                    percent=42.5, message="half way", updated_at=START
                ),
                "history": (
                    Attempt(
                        attempt=1,
                        started_at=START,
                        finished_at=START + timedelta(seconds=2),
                        error=JobError(type="Boom", message="first try"),
                        request_id="req-1",
                        duration_ms=2000,
                    ),
                ),
            }
        )
    )

    # When she reads it
    body = client.get(f"/jobs/{job_id}", headers=ANN).json()

    # Then progress and every attempt are shown exactly
    assert body["progress"] == {
        "percent": 42.5,
        "message": "half way",
        "updated_at": "2025-01-15T12:00:00Z",
    }
    assert body["history"] == [
        {
            "attempt": 1,
            "started_at": "2025-01-15T12:00:00Z",
            "finished_at": "2025-01-15T12:00:02Z",
            "error": {"type": "Boom", "message": "first try"},
            "request_id": "req-1",
            "duration_ms": 2000,
        }
    ]


# --------------------------------------------------------------------------- retry


def test_retry_requeues_a_cancelled_job(client: TestClient, fakes: Fakes) -> None:
    _, repo, queue = fakes
    # Given ann's cancelled job
    job_id = _submit(client).json()["id"]
    client.post(f"/jobs/{job_id}/cancel", headers=ANN)

    # When she retries it
    response = client.post(f"/jobs/{job_id}/retry", headers=ANN)

    # Then it is queued again with a fresh budget, and a new message is on the queue
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["attempts"], body["finished_at"]) == (
        "queued",
        0,
        None,
    )
    assert [s.message.job_id for s in queue.sent] == [job_id, job_id]
    assert [j.status for j in repo.jobs] == [JobStatus.QUEUED]

    # And retrying the queued job is a conflict
    again = client.post(f"/jobs/{job_id}/retry", headers=ANN)
    assert again.status_code == 409
    assert "queued" in _detail(again)


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nope"])
def test_retry_unknown_job_is_404(client: TestClient, job_id: str) -> None:
    response = client.post(f"/jobs/{job_id}/retry", headers=ANN)
    assert response.status_code == 404
    assert _detail(response)


def test_retry_of_another_callers_job_is_404(client: TestClient) -> None:
    job_id = _submit(client).json()["id"]
    client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    assert client.post(f"/jobs/{job_id}/retry", headers=BOB).status_code == 404


def test_retry_during_a_queue_outage_is_queued(
    client: TestClient, fakes: Fakes
) -> None:
    _, repo, queue = fakes
    # Given ann's cancelled job and an SQS outage
    job_id = _submit(client).json()["id"]
    client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    queue.fail_with = "ServiceUnavailable"

    # When she retries it, then it is queued: the outbox sends its message once SQS is back
    response = client.post(f"/jobs/{job_id}/retry", headers=ANN)
    assert response.status_code == 200
    assert [j.status for j in repo.jobs] == [JobStatus.QUEUED]


def test_a_submit_whose_store_does_not_answer_is_503_with_the_job_id(
    client: TestClient, fakes: Fakes
) -> None:
    def lost_create(job: Job, now: datetime) -> None:
        raise StorageUnavailable("create: ReadTimeoutError")

    fakes[1].create = lost_create  # type: ignore[method-assign]

    response = _submit(client, headers={**ANN, "Idempotency-Key": "order-1"})

    assert response.status_code == 503
    body = response.json()
    assert body["job_id"] and body["job_id"] in body["detail"]
    assert response.headers["Location"] == f"/jobs/{body['job_id']}"


# ---------------------------------------------------------------- framework errors


def test_unknown_route_and_wrong_method_are_json(client: TestClient) -> None:
    missing = client.get("/nowhere", headers=ANN)
    wrong_method = client.delete("/jobs", headers=ANN)

    assert (missing.status_code, _detail(missing)) == (404, "Not Found")
    assert (wrong_method.status_code, _detail(wrong_method)) == (
        405,
        "Method Not Allowed",
    )


# ------------------------------------------------------------------------ identity


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/jobs"),
        ("GET", "/jobs"),
        ("GET", f"/jobs/{UNKNOWN_ID}"),
        ("POST", f"/jobs/{UNKNOWN_ID}/cancel"),
        ("POST", f"/jobs/{UNKNOWN_ID}/retry"),
        ("GET", "/job-types"),
    ],
)
def test_no_identity_is_401(
    client: TestClient, fakes: Fakes, method: str, path: str
) -> None:
    body = {"type": "echo"} if method == "POST" else None
    for headers in ({}, {"X-Dev-User": ""}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert _detail(response) == "authentication required"
    assert _nothing_stored(fakes)


@pytest.mark.parametrize(
    ("identity", "reason"),
    [
        ("a" * 257, "is longer than 256 characters"),
        ("b" * 300, "is longer than 256 characters"),
        (" bob", "has leading or trailing whitespace"),
        ("bob\t", "has leading or trailing whitespace"),
        ("   ", "has leading or trailing whitespace"),
    ],
    ids=["257-chars", "300-chars", "leading-space", "trailing-tab", "blank"],
)
def test_a_development_identity_is_used_as_sent_or_refused(
    client: TestClient, fakes: Fakes, identity: str, reason: str
) -> None:
    # Given an identity that trimming or cutting would turn into another (bob, or a's prefix)
    _submit(client, headers={"X-Dev-User": identity[:256].strip() or "x"})

    # When it is used
    response = client.get("/jobs", headers={"X-Dev-User": identity})
    submit = _submit(client, headers={"X-Dev-User": identity})

    # Then it is refused, saying why, and nobody else's jobs are read or written
    for refused in (response, submit):
        assert refused.status_code == 401
        assert _detail(refused) == (
            f"authentication required: the X-Dev-User identity {reason}"
        )
    assert len(fakes[1].jobs) == 1


def test_a_256_character_identity_is_used_whole(
    client: TestClient, fakes: Fakes
) -> None:
    identity = "a" * 255 + "z"

    response = _submit(client, headers={"X-Dev-User": identity})

    assert response.status_code == 202
    assert [job.owner for job in fakes[1].jobs] == [identity]


def test_a_404_echoes_at_most_a_short_prefix_of_the_id(client: TestClient) -> None:
    long_id = "x" * 10_000

    for response in (
        client.get(f"/jobs/{long_id}", headers=ANN),
        client.post(f"/jobs/{long_id}/cancel", headers=ANN),
        client.post(f"/jobs/{long_id}/retry", headers=ANN),
    ):
        assert response.status_code == 404
        assert _detail(response) == f"job '{'x' * 64}...' not found"


def test_a_422_echoes_at_most_a_short_prefix_of_a_field_name(
    client: TestClient,
) -> None:
    response = client.post("/jobs", json={"type": "echo", "k" * 10_000: 1}, headers=ANN)

    assert response.status_code == 422
    assert _detail(response)[0]["loc"] == ["body", "k" * 64 + "..."]
    assert len(response.content) < 1024


def test_dev_identity_is_ignored_unless_enabled(fakes: Fakes) -> None:
    # Given the app with the development identity disabled
    service = fakes[0]
    app = create_app(service_factory=lambda: service, allow_dev_identity=False)
    with TestClient(app) as client:
        # When a caller only sends X-Dev-User
        response = _submit(client)
        listing = client.get("/jobs", headers=ANN)

    # Then it is not a caller
    assert (response.status_code, listing.status_code) == (401, 401)
    assert _nothing_stored(fakes)


# ------------------------------------------------------------ Lambda handler path


@pytest.fixture
def lambda_service(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    """The Lambda handler's own app, its service swapped for the fake, as deployed (no dev header)."""
    monkeypatch.setenv("JOBLINE_ALLOW_DEV_IDENTITY", "false")
    handler_app.dependency_overrides[get_job_service] = lambda: fakes[0]
    try:
        yield fakes
    finally:
        handler_app.dependency_overrides.pop(get_job_service, None)
        structlog.contextvars.clear_contextvars()  # the handler bound its invocation here


def _invoke_raw(event: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    response = lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], response["headers"], response.get("body", "")


def _invoke(event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    status, headers, body = _invoke_raw(event)
    return status, headers, json.loads(body)


def test_the_jwt_subject_owns_the_job(lambda_service: Fakes) -> None:
    _, repo, _ = lambda_service
    # When a caller with a JWT submits through the Lambda handler
    status, headers, job = _invoke(
        http_api_event("POST", "/jobs", body='{"type": "echo"}', sub="user-123")
    )

    # Then the job belongs to the token's subject, and only they can read it
    assert status == 202
    assert headers["location"] == f"/jobs/{job['id']}"
    assert [(j.id, j.owner) for j in repo.jobs] == [(job["id"], "user-123")]
    assert (
        _invoke(http_api_event("GET", f"/jobs/{job['id']}", sub="user-123"))[0] == 200
    )
    assert _invoke(http_api_event("GET", f"/jobs/{job['id']}", sub="other"))[0] == 404


def test_without_claims_the_handler_answers_401(lambda_service: Fakes) -> None:
    # The deployed app does not accept the development header (the setting is off)
    status, headers, body = _invoke(
        http_api_event(
            "POST", "/jobs", body='{"type": "echo"}', headers={"X-Dev-User": "ann"}
        )
    )
    assert (status, body) == (401, {"detail": "authentication required"})
    assert headers["www-authenticate"] == "Bearer"
    assert lambda_service[1].jobs == []


def test_a_token_subject_that_is_no_identity_is_401(lambda_service: Fakes) -> None:
    # Given a JWT (any issuer's) whose `sub` is longer than any identity may be
    status, _, body = _invoke(
        http_api_event("POST", "/jobs", body='{"type": "echo"}', sub="s" * 300)
    )

    # Then it is refused, not stored under it or a cut of it
    assert (status, body) == (
        401,
        {
            "detail": "authentication required: the token's subject is longer than "
            "256 characters"
        },
    )
    assert lambda_service[1].jobs == []


def test_behind_a_named_stage_routes_and_locations_carry_the_stage(
    lambda_service: Fakes,
) -> None:
    status, headers, job = _invoke(
        http_api_event(
            "POST", "/jobs", body='{"type": "echo"}', sub="user-123", stage="v1"
        )
    )
    assert status == 202
    assert headers["location"] == f"/v1/jobs/{job['id']}"

    listing = _invoke(
        http_api_event("GET", "/jobs", sub="user-123", stage="v1", query="limit=5")
    )
    assert listing[0] == 200
    assert [item["id"] for item in listing[2]["items"]] == [job["id"]]


def test_behind_a_named_stage_a_trailing_slash_redirect_keeps_the_stage(
    lambda_service: Fakes,
) -> None:
    # When a caller asks for /prod/jobs/ (trailing slash)
    status, headers, _ = _invoke_raw(
        http_api_event("GET", "/jobs/", sub="user-123", stage="prod")
    )

    # Then the redirect goes to /prod/jobs, not to /jobs outside the stage
    assert status == 307
    assert headers["location"] == (
        "https://api1234567.execute-api.us-east-1.amazonaws.com/prod/jobs"
    )


def test_behind_a_named_stage_an_unanswered_submit_names_the_job_under_the_stage(
    lambda_service: Fakes,
) -> None:
    def lost_create(job: Job, now: datetime) -> None:
        raise StorageUnavailable("create: ReadTimeoutError")

    lambda_service[1].create = lost_create  # type: ignore[method-assign]

    status, headers, body = _invoke(
        http_api_event(
            "POST", "/jobs", body='{"type": "echo"}', sub="user-123", stage="prod"
        )
    )

    assert status == 503
    assert headers["location"] == f"/prod/jobs/{body['job_id']}"
    assert headers["retry-after"] == "1"


def test_behind_a_named_stage_the_docs_load_the_spec_from_the_stage(
    lambda_service: Fakes,
) -> None:
    status, _, page = _invoke_raw(http_api_event("GET", "/docs", stage="prod"))

    assert status == 200
    assert "'/prod/openapi.json'" in page or '"/prod/openapi.json"' in page
    status, _, spec = _invoke_raw(http_api_event("GET", "/openapi.json", stage="prod"))
    assert status == 200
    assert json.loads(spec)["servers"] == [{"url": "/prod"}]


def test_behind_a_named_stage_the_stage_root_and_other_prefixes_do_not_route(
    lambda_service: Fakes,
) -> None:
    # A path outside the stage (API Gateway never sends one) and the bare stage route nowhere
    for event in (
        http_api_event("GET", "/health", stage="prod") | {"rawPath": "/prod10/health"},
        http_api_event("GET", "", stage="prod"),
    ):
        event["requestContext"]["http"]["path"] = event["rawPath"]
        assert _invoke_raw(event)[0] == 404
    assert _invoke_raw(http_api_event("GET", "/health", stage="prod"))[0] == 200


def test_on_the_default_stage_nothing_is_prefixed(lambda_service: Fakes) -> None:
    status, headers, _ = _invoke_raw(http_api_event("GET", "/jobs/", sub="user-123"))

    assert status == 307
    assert headers["location"].endswith(".amazonaws.com/jobs")
