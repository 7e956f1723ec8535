"""GET /health, GET /job-types, GET /jobs/{id} and GET /jobs: reading jobs and what can run."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from jobline.bootstrap import default_registry
from jobline.cursor import CursorCodec
from jobline.models import JobFilter
from jobline.ports import StartKey
from jobline_api.errors import CURSOR_DETAIL

from tests.support.fakes import (
    CURSOR_SECRET,
)
from tests.unit.api.calls import (
    ANN,
    BOB,
    UNKNOWN_ID,
    error_detail,
    submit_echo,
)

SK = f"2025-01-15T12:00:00.000000Z#{UNKNOWN_ID}"

# ------------------------------------------------------------------------- health


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_job_types_lists_name_description_and_input_schema(client: TestClient) -> None:
    response = client.get("/job-types", headers=ANN)

    # Then it lists every type this deployment discovered, each as declared
    assert response.status_code == 200
    types = response.json()
    assert types == [
        {
            "name": job_type.name,
            "description": job_type.description,
            "input_schema": job_type.input_schema(),
        }
        for job_type in default_registry()
    ]
    sleep = {t["name"]: t for t in types}["sleep"]
    assert sleep["input_schema"]["properties"]["seconds"]["maximum"] == 600
    assert sleep["input_schema"]["required"] == ["seconds"]


# ----------------------------------------------------------------------------- get


def test_get_job(client: TestClient) -> None:
    job = submit_echo(client, payload={"n": 10**30}).json()

    response = client.get(f"/jobs/{job['id']}", headers=ANN)

    assert (response.status_code, response.json()) == (200, job)
    assert response.json()["payload"] == {"n": 10**30}


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "not-a-job", "x" * 500, "%00"])
def test_unknown_or_malformed_id_is_404(client: TestClient, job_id: str) -> None:
    response = client.get(f"/jobs/{job_id}", headers=ANN)
    assert response.status_code == 404
    assert isinstance(error_detail(response), str)


def test_another_callers_job_is_404(client: TestClient) -> None:
    job = submit_echo(client, BOB).json()

    assert client.get(f"/jobs/{job['id']}", headers=ANN).status_code == 404
    assert client.post(f"/jobs/{job['id']}/cancel", headers=ANN).status_code == 404
    assert client.get("/jobs", headers=ANN).json() == {"items": [], "next_cursor": None}


# ---------------------------------------------------------------------------- list


def test_list_jobs_newest_first_with_filters(client: TestClient) -> None:
    # Given two echo jobs and a sleep job, the second echo cancelled
    first = submit_echo(client).json()["id"]
    second = submit_echo(client).json()["id"]
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
    submitted = [submit_echo(client, payload={"i": i}).json()["id"] for i in range(5)]

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
        submit_echo(client)
    cursor = client.get("/jobs?limit=1", headers=ANN).json()["next_cursor"]
    tampered = ("B" if cursor[0] == "A" else "A") + cursor[1:]

    for bad in (tampered, "garbage", "é.é"):
        response = client.get("/jobs", params={"cursor": bad}, headers=ANN)
        assert response.status_code == 400
        assert error_detail(response) == CURSOR_DETAIL
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
    [error] = error_detail(response)
    assert (error["loc"][0], error["type"]) == ("query", "extra_forbidden")


EARLIER_CURSORS: dict[str, tuple[str, StartKey]] = {
    "id only": ("", {"id": UNKNOWN_ID}),
    "empty": ("", {}),
    "unknown attribute": ("", {"bogus": "1"}),
    "one more attribute": (
        "",
        {"id": UNKNOWN_ID, "sk": SK, "owner": "ann", "shard": "1"},
    ),
    "another partition": ("", {"id": UNKNOWN_ID, "sk": SK, "owner": "bob"}),
    "by_owner_type": (
        "type=echo",
        {"id": UNKNOWN_ID, "sk": SK, "owner_type": "ann#echo"},
    ),
    "status index of every status": (
        "status=queued",
        {"id": UNKNOWN_ID, "sk": SK, "owner_status": "ann#queued"},
    ),
    "by_owner for a kept status": (
        "status=failed",
        {"id": UNKNOWN_ID, "sk": SK, "owner": "ann"},
    ),
}
"""Resume keys signed by earlier versions (`git log -- shared/jobline/listing.py`, the
`by_owner_type` index before e036521, a status index of every status before bbbb750), or
forged with the deployment's key, for the listing whose query they were signed with."""


@pytest.mark.parametrize("shape", sorted(EARLIER_CURSORS))
def test_a_signed_cursor_of_a_shape_this_version_does_not_use_is_400(
    client: TestClient, shape: str
) -> None:
    # Given a cursor signed with the deployment's key around a resume key of another shape (an
    # earlier version's, as after an upgrade)
    query, start = EARLIER_CURSORS[shape]
    params = dict(part.split("=") for part in query.split("&") if part)
    job_filter = JobFilter.model_validate(params)
    submit_echo(client)
    cursor = CursorCodec(CURSOR_SECRET).encode(start, "ann", job_filter)

    # When it is used
    response = client.get("/jobs", params={**params, "cursor": cursor}, headers=ANN)

    # Then it is 400, saying to start from the first page, not a server error
    assert (response.status_code, error_detail(response)) == (400, CURSOR_DETAIL)
    assert "start from the first page" in CURSOR_DETAIL


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
    assert [d["loc"] for d in error_detail(response)] == [["query", field]]


@pytest.mark.parametrize("limit", [1, 100])
def test_limit_bounds_are_accepted(client: TestClient, limit: int) -> None:
    assert client.get(f"/jobs?limit={limit}", headers=ANN).status_code == 200
