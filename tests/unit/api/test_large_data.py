"""The API's side of the claim check: bodies over 1 MiB go through an upload, and a job's data
kept in the data bucket is answered as presigned links (`payload_url`, `result_url`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from jobline.limits import DATA_URL_TTL_S, INLINE_DATA_BYTES, MAX_REQUEST_BODY_BYTES
from jobline.models import JobStatus
from jobline.validation import canonical_json
from jobline_api.app import create_app

from tests.support.builders import delivery_of
from tests.support.fakes import START, FakeClock, InMemoryBlobStore
from tests.support.services import build_fake_service
from tests.unit.api.calls import ANN, BOB, error_detail

Fakes = tuple[Any, Any, Any, InMemoryBlobStore]


@pytest.fixture
def fakes() -> Fakes:
    blobs = InMemoryBlobStore()
    service, repo, queue = build_fake_service(clock=FakeClock(), blobs=blobs)
    return service, repo, queue, blobs


@pytest.fixture
def client(fakes: Fakes) -> Iterator[TestClient]:
    service = fakes[0]
    app = create_app(service_factory=lambda: service, allow_dev_identity=True)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def payload_of(size: int) -> dict[str, str]:
    """A payload whose canonical JSON takes `size` bytes."""
    return {"data": "x" * (size - len('{"data":""}'))}


def upload(client: TestClient, blobs: InMemoryBlobStore, data: bytes) -> str:
    form = client.post("/uploads", headers=ANN)
    assert form.status_code == 201, form.text
    body = form.json()
    sent = blobs.handle(
        httpx.Request(
            "POST",
            body["url"],
            data=body["fields"],
            files={"file": ("p.json", data, "application/json")},
        )
    )
    assert sent.status_code == 204
    upload_id: str = body["upload_id"]
    return upload_id


def test_a_body_over_the_inline_limit_is_refused_with_the_way_to_upload(
    client: TestClient, fakes: Fakes
) -> None:
    # Given a submit whose body is one byte over 1 MiB
    body: dict[str, Any] = {"type": "echo", "payload": {"data": ""}}
    pad = MAX_REQUEST_BODY_BYTES + 1 - len(json.dumps(body, separators=(",", ":")))
    body["payload"]["data"] = "x" * pad
    content = json.dumps(body, separators=(",", ":")).encode()
    assert len(content) == MAX_REQUEST_BODY_BYTES + 1

    # When it is sent
    response = client.post(
        "/jobs",
        content=content,
        headers={**ANN, "Content-Type": "application/json"},
    )

    # Then it is 413, naming the upload route, and nothing is stored
    assert response.status_code == 413
    assert "POST /uploads" in error_detail(response)
    assert fakes[1].jobs == [] and fakes[3].puts == []


def test_a_body_at_the_limit_is_taken_its_payload_kept_in_the_bucket(
    client: TestClient, fakes: Fakes
) -> None:
    body: dict[str, Any] = {"type": "echo", "payload": {"data": ""}}
    pad = MAX_REQUEST_BODY_BYTES - len(json.dumps(body, separators=(",", ":")))
    body["payload"]["data"] = "x" * pad
    content = json.dumps(body, separators=(",", ":")).encode()

    response = client.post(
        "/jobs", content=content, headers={**ANN, "Content-Type": "application/json"}
    )

    assert response.status_code == 202, response.text
    job = response.json()
    data = canonical_json(body["payload"]).encode()
    assert (job["payload"], job["payload_size"]) == (None, len(data))
    assert job["payload_sha256"] == hashlib.sha256(data).hexdigest()


def test_a_payload_goes_through_an_upload_and_is_linked_back(
    client: TestClient, fakes: Fakes
) -> None:
    # Given ann's upload of a 2 MiB payload
    _, _, _, blobs = fakes
    payload = payload_of(2 * 1024 * 1024)
    data = canonical_json(payload).encode()
    upload_id = upload(client, blobs, data)

    # When she submits it by its upload id, then reads the job
    submitted = client.post(
        "/jobs", json={"type": "echo", "payload_upload": upload_id}, headers=ANN
    )
    assert submitted.status_code == 202, submitted.text
    job = client.get(f"/jobs/{submitted.json()['id']}", headers=ANN).json()

    # Then the job links to its payload (a presigned GET valid 600 s) instead of holding it,
    # with its size and digest, and the link brings back the very bytes
    assert job["payload"] is None
    assert (job["payload_size"], job["payload_sha256"]) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    expires = datetime.fromisoformat(job["payload_url_expires_at"])
    assert expires == START + timedelta(seconds=DATA_URL_TTL_S)
    fetched = blobs.handle(httpx.Request("GET", job["payload_url"]))
    assert fetched.content == data
    assert job["result_url"] is None


def test_a_large_result_is_linked_small_data_is_held(
    client: TestClient, fakes: Fakes
) -> None:
    # Given a job that echoed a payload over the inline bound, and one under it
    service, repo, _, blobs = fakes

    ids = []
    for size in (INLINE_DATA_BYTES + 1, 10):
        response = client.post(
            "/jobs", json={"type": "echo", "payload": payload_of(size)}, headers=ANN
        )
        ids.append(response.json()["id"])
    for job_id in ids:
        job = repo.get(job_id)
        assert job is not None
        service.run(delivery_of(job))

    large, small = (client.get(f"/jobs/{job_id}", headers=ANN).json() for job_id in ids)

    # Then the large one's result is a link, the small one's held
    assert large["status"] == JobStatus.SUCCEEDED
    assert large["result"] is None and large["result_size"] == INLINE_DATA_BYTES + 1
    fetched = blobs.handle(httpx.Request("GET", large["result_url"]))
    assert json.loads(fetched.content) == payload_of(INLINE_DATA_BYTES + 1)
    assert small["result"] == payload_of(10)
    assert all(small[f"{name}_url"] is None for name in ("payload", "result"))


def test_an_upload_nobody_made_is_refused_like_a_cursor_nobody_issued(
    client: TestClient,
) -> None:
    # (schema-valid, as an opaque reference: 400, as for a cursor, naming the field)
    response = client.post(
        "/jobs", json={"type": "echo", "payload_upload": "0" * 32}, headers=ANN
    )

    assert response.status_code == 400
    [error] = error_detail(response)
    assert (error["loc"], error["type"]) == (
        ["body", "payload_upload"],
        "unknown_upload",
    )


def test_another_callers_upload_is_not_found(client: TestClient, fakes: Fakes) -> None:
    upload_id = upload(client, fakes[3], b'{"n": 1}')

    response = client.post(
        "/jobs", json={"type": "echo", "payload_upload": upload_id}, headers=BOB
    )

    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"type": "echo", "payload": {}, "payload_upload": "0" * 32},
        {"type": "echo", "payload_upload": "not-an-upload-id"},
    ],
)
def test_a_submit_names_one_payload_and_a_well_formed_upload(
    client: TestClient, body: dict[str, Any]
) -> None:
    response = client.post("/jobs", json=body, headers=ANN)

    assert response.status_code == 422


def test_uploads_need_an_identity(client: TestClient) -> None:
    response = client.post("/uploads")

    assert response.status_code == 401
