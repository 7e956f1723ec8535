"""POST /jobs: what a submit accepts, refuses and stores."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.jobfields import PUBLIC_FIELDS
from tests.unit.api.calls import (
    ANN,
    BOB,
    Fakes,
    error_detail,
    nothing_stored,
    submit_echo,
)

# ------------------------------------------------------------------------- submit


def test_submit_is_accepted_with_location(client: TestClient, fakes: Fakes) -> None:
    _, repo, queue = fakes
    # When ann submits an echo job
    response = submit_echo(client, payload={"x": 0.1}, max_attempts=4, delay_seconds=5)

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
    response = submit_echo(client, max_attempts=5.0, delay_seconds=0.0)

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
    first = submit_echo(client, headers, payload={"n": 1})

    again = submit_echo(client, headers, payload={"n": 1})

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert len(fakes[2].sent) == 1


def test_same_idempotency_key_with_another_body_is_409(
    client: TestClient, fakes: Fakes
) -> None:
    headers = {**ANN, "Idempotency-Key": "order-1"}
    submit_echo(client, headers, payload={"n": 1})

    response = submit_echo(client, headers, payload={"n": 2})

    assert response.status_code == 409
    assert "order-1" in error_detail(response)
    assert len(fakes[1].jobs) == len(fakes[2].sent) == 1


def test_idempotency_keys_are_per_caller(client: TestClient, fakes: Fakes) -> None:
    ann = submit_echo(client, {**ANN, "Idempotency-Key": "k"})
    bob = submit_echo(client, {**BOB, "Idempotency-Key": "k"})

    assert (ann.status_code, bob.status_code) == (202, 202)
    assert ann.json()["id"] != bob.json()["id"]


def test_an_overlong_idempotency_key_is_422(client: TestClient, fakes: Fakes) -> None:
    response = submit_echo(client, {**ANN, "Idempotency-Key": "k" * 256})
    assert response.status_code == 422
    assert [d["loc"] for d in error_detail(response)] == [["header", "idempotency-key"]]
    assert nothing_stored(fakes)


def test_unknown_type_is_422_on_the_type_field(
    client: TestClient, fakes: Fakes
) -> None:
    response = client.post("/jobs", json={"type": "teleport"}, headers=ANN)

    assert response.status_code == 422
    [error] = error_detail(response)
    assert (error["loc"], error["type"]) == (["body", "type"], "unknown_job_type")
    assert "echo" in error["msg"]
    assert nothing_stored(fakes)


def test_invalid_payload_is_422_with_field_level_detail(
    client: TestClient, fakes: Fakes
) -> None:
    response = client.post(
        "/jobs", json={"type": "sleep", "payload": {"seconds": 601}}, headers=ANN
    )

    assert response.status_code == 422
    assert [(d["loc"], d["type"]) for d in error_detail(response)] == [
        (["body", "payload", "seconds"], "less_than_equal")
    ]
    assert nothing_stored(fakes)


def test_http_request_payload_errors_name_each_field(
    client: TestClient, fakes: Fakes
) -> None:
    response = client.post(
        "/jobs",
        json={"type": "http.request", "payload": {"url": "ftp://x", "method": "TRACE"}},
        headers=ANN,
    )

    assert response.status_code == 422
    assert sorted(tuple(d["loc"]) for d in error_detail(response)) == [
        ("body", "payload", "method"),
        ("body", "payload", "url"),
    ]
    assert nothing_stored(fakes)


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
    assert [d["loc"] for d in error_detail(response)] == [["body", field]]
    assert nothing_stored(fakes)


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
    assert all(d["loc"][:2] == ["body", field] for d in error_detail(response))
    assert nothing_stored(fakes)


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
    [error] = error_detail(response)
    assert error["loc"] == ["body", "payload"]
    assert message in error["msg"]
    assert nothing_stored(fakes)


def test_a_payload_64_levels_deep_is_accepted(client: TestClient) -> None:
    raw = '{"type": "echo", "payload": ' + _nested(63) + "}"
    response = client.post(
        "/jobs", content=raw, headers={**ANN, "Content-Type": "application/json"}
    )
    assert response.status_code == 202


BODY_DETAIL = "the body must be a JSON object (Content-Type: application/json)"
JSON = {"Content-Type": "application/json"}
ECHO = b'{"type": "echo"}'


@pytest.mark.parametrize(
    ("raw", "headers"),
    [
        (b"{not json", JSON),
        (b'{"type": "echo",}', JSON),
        (b"", JSON),
        (b"\xff\xfe\x00", JSON),
        (ECHO, {}),
        (ECHO, {"Content-Type": "text/plain"}),
        (ECHO, {"Content-Type": "application/x-www-form-urlencoded"}),
        (b"", {}),
    ],
    ids=[
        "broken",
        "trailing-comma",
        "empty",
        "not-utf8",
        "no-content-type",
        "text-plain",
        "form",
        "nothing",
    ],
)
def test_a_body_that_is_no_json_object_sent_as_json_is_400_saying_what_to_send(
    client: TestClient, fakes: Fakes, raw: bytes, headers: dict[str, str]
) -> None:
    response = client.post("/jobs", content=raw, headers={**ANN, **headers})

    assert (response.status_code, error_detail(response)) == (400, BODY_DETAIL)
    assert nothing_stored(fakes)


@pytest.mark.parametrize(
    "raw", [b"[1, 2]", b'"echo"', b"42"], ids=["array", "string", "number"]
)
def test_json_that_is_not_an_object_is_422_on_the_body(
    client: TestClient, fakes: Fakes, raw: bytes
) -> None:
    response = client.post("/jobs", content=raw, headers={**ANN, **JSON})

    assert response.status_code == 422
    [error] = error_detail(response)
    assert (error["loc"], error["type"]) == (["body"], "model_attributes_type")
    assert nothing_stored(fakes)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.jobs+json"]
)
def test_json_content_types_are_read_as_json(
    client: TestClient, content_type: str
) -> None:
    response = client.post(
        "/jobs", content=ECHO, headers={**ANN, "Content-Type": content_type}
    )
    assert response.status_code == 202


def test_too_large_payload_is_413(client: TestClient, fakes: Fakes) -> None:
    response = submit_echo(client, payload={"blob": "x" * 5000})

    assert response.status_code == 413
    assert "4096" in error_detail(response)
    assert nothing_stored(fakes)


def test_a_queue_outage_does_not_fail_a_submit(
    client: TestClient, fakes: Fakes
) -> None:
    # The submit's one write is the row; the outbox sends the message once SQS is back
    fakes[2].fail_with = "ServiceUnavailable"

    response = submit_echo(client)

    assert response.status_code == 202
    assert [job.id for job in fakes[1].jobs] == [response.json()["id"]]
    assert [job.id for job in fakes[1].stream.undelivered] == [response.json()["id"]]
