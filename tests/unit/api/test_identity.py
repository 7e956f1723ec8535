"""Who the caller is (the JWT subject, the development header) and the framework's own errors as JSON."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from jobline_api.app import create_app

from tests.unit.api.calls import (
    ANN,
    UNKNOWN_ID,
    Fakes,
    error_detail,
    nothing_stored,
    submit_echo,
)

# ---------------------------------------------------------------- framework errors


def test_unknown_route_and_wrong_method_are_json(client: TestClient) -> None:
    missing = client.get("/nowhere", headers=ANN)
    wrong_method = client.delete("/jobs", headers=ANN)

    assert (missing.status_code, error_detail(missing)) == (404, "Not Found")
    assert (wrong_method.status_code, error_detail(wrong_method)) == (
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
        assert error_detail(response) == "authentication required"
    assert nothing_stored(fakes)


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
    submit_echo(client, headers={"X-Dev-User": identity[:256].strip() or "x"})

    # When it is used
    response = client.get("/jobs", headers={"X-Dev-User": identity})
    submit = submit_echo(client, headers={"X-Dev-User": identity})

    # Then it is refused, saying why, and nobody else's jobs are read or written
    for refused in (response, submit):
        assert refused.status_code == 401
        assert error_detail(refused) == (
            f"authentication required: the X-Dev-User identity {reason}"
        )
    assert len(fakes[1].jobs) == 1


def test_a_256_character_identity_is_used_whole(
    client: TestClient, fakes: Fakes
) -> None:
    identity = "a" * 255 + "z"

    response = submit_echo(client, headers={"X-Dev-User": identity})

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
        assert error_detail(response) == f"job '{'x' * 64}...' not found"


def test_a_422_echoes_at_most_a_short_prefix_of_a_field_name(
    client: TestClient,
) -> None:
    response = client.post("/jobs", json={"type": "echo", "k" * 10_000: 1}, headers=ANN)

    assert response.status_code == 422
    assert error_detail(response)[0]["loc"] == ["body", "k" * 64 + "..."]
    assert len(response.content) < 1024


def test_dev_identity_is_ignored_unless_enabled(fakes: Fakes) -> None:
    # Given the app with the development identity disabled
    service = fakes[0]
    app = create_app(service_factory=lambda: service, allow_dev_identity=False)
    with TestClient(app) as client:
        # When a caller only sends X-Dev-User
        response = submit_echo(client)
        listing = client.get("/jobs", headers=ANN)

    # Then it is not a caller
    assert (response.status_code, listing.status_code) == (401, 401)
    assert nothing_stored(fakes)
