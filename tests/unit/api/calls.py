"""What the API tests share: identities, and the shape of every error answer."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from jobline.service import JobService

from tests.support.fakes import (
    InMemoryJobQueue,
    InMemoryJobRepository,
)

ANN = {"X-Dev-User": "ann"}
BOB = {"X-Dev-User": "bob"}
UNKNOWN_ID = "0" * 32

Fakes = tuple[JobService, InMemoryJobRepository, InMemoryJobQueue]


def error_detail(response: Response) -> Any:
    """The error detail; every error answer is JSON `{"detail": ...}` and nothing else."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["detail"]
    return body["detail"]


def submit_echo(
    client: TestClient, headers: dict[str, str] = ANN, **body: Any
) -> Response:
    response: Response = client.post(
        "/jobs", json={"type": "echo", **body}, headers=headers
    )
    return response


def nothing_stored(fakes: Fakes) -> bool:
    _, repo, queue = fakes
    return repo.jobs == [] and queue.sent == []
