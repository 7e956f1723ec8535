"""The cursor key: from SSM Parameter Store (a SecureString, read once per execution environment,
when a cursor is first signed or read, or before a SnapStart snapshot), refused on Lambda when it
is the public development key or shorter than 32 bytes (a listing that needs it answers 503 and
the log says why; a SnapStart version is not published), and rotated with a grace period in which
cursors signed with the previous key still read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient
from jobline import bootstrap
from jobline.aws.parameters import load_cursor_keys
from jobline.bootstrap import cursor_keys, ssm_client
from jobline.clock import utcnow
from jobline.config import Settings
from jobline.cursor import DEVELOPMENT_KEY, CursorCodec, CursorKeys
from jobline.errors import ConfigurationError, InvalidCursor
from jobline.models import JobFilter
from jobline_api import coldstart
from jobline_api.app import create_app
from jobline_api.errors import UNUSABLE_CONFIGURATION
from moto import mock_aws

from tests.conftest import REGION, MotoStack

NAME = "/jobline-test/cursor-secret"
FIRST = "first-cursor-key-0123456789abcdef-0123"
SECOND = "second-cursor-key-0123456789abcdef-012"
KEY = {"id": "0" * 32, "sk": "2025-01-15T12:00:00.000000Z#" + "0" * 32, "owner": "ann"}
ALL = JobFilter()
ANN = {"X-Dev-User": "ann"}
WELL_FORMED_CURSOR = "eyJpZCI6IjAifQ.c2lnbmF0dXJl"
"""Shaped like a cursor (body.mac): reading it needs the keys."""


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("ssm", region_name=REGION)
        client.put_parameter(Name=NAME, Value=FIRST, Type="SecureString")
        monkeypatch.setenv("JOBLINE_CURSOR_SECRET_PARAMETER", NAME)
        monkeypatch.delenv("JOBLINE_CURSOR_SECRET")
        bootstrap.reset()
        yield client
        bootstrap.reset()


def _settings() -> Settings:
    return Settings()  # type: ignore[call-arg]


def _on_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "jobline-ApiFunction")
    bootstrap.reset()


# ------------------------------------------------------------------ refusing weak keys


WEAK_KEYS = pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({}, "the cursor key is the public development key"),
        (
            {"JOBLINE_CURSOR_SECRET": DEVELOPMENT_KEY.decode()},
            "the cursor key is the public development key",
        ),
        ({"JOBLINE_CURSOR_SECRET": "short-key"}, "is 9 bytes long; at least 32"),
        (
            {"JOBLINE_CURSOR_SECRET": FIRST, "JOBLINE_CURSOR_SECRET_PREVIOUS": "old"},
            "the previous cursor key is 3 bytes long",
        ),
    ],
    ids=["none", "the-public-default", "short", "short-previous"],
)


def _weak(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    monkeypatch.delenv("JOBLINE_CURSOR_SECRET")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    _on_lambda(monkeypatch)


def _log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@WEAK_KEYS
def test_with_a_weak_key_on_lambda_the_api_refuses_every_cursor_and_says_why(
    moto_stack: MotoStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variables: dict[str, str],
    problem: str,
) -> None:
    # Given a Lambda environment whose cursor key is weak, past its init phase (which reads no
    # key: a request that lists nothing never waits for SSM)
    _weak(monkeypatch, variables)
    app = create_app(allow_dev_identity=True)
    coldstart.prepare(app)
    assert cursor_keys.cache_info().currsize == 0

    with TestClient(app) as api:
        for n in range(2):
            api.post("/jobs", json={"type": "echo", "payload": {"n": n}}, headers=ANN)
        capsys.readouterr()

        # When a listing must sign a cursor (a next page), or read one
        signing = api.get("/jobs", params={"limit": 1}, headers=ANN)
        reading = api.get("/jobs", params={"cursor": WELL_FORMED_CURSOR}, headers=ANN)

    # Then both are refused as unavailable, without the reason (the caller cannot fix it) ...
    for response in (signing, reading):
        assert response.status_code == 503
        assert response.json() == {"detail": UNUSABLE_CONFIGURATION}
    # ... which the log gives the operator, once per refusal, at ERROR
    refused = [
        line
        for line in _log_lines(capsys.readouterr().out)
        if line["event"] == "http.configuration_refused"
    ]
    assert len(refused) == 2
    assert all(line["level"] == "error" for line in refused)
    assert all(problem in line["reason"] for line in refused)
    # And nothing weak was kept: the next listing reads the configuration again
    assert cursor_keys.cache_info().currsize == 0


@WEAK_KEYS
def test_with_a_weak_key_a_snapstart_version_is_not_published(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], problem: str
) -> None:
    # Given a Lambda environment whose cursor key is weak
    _weak(monkeypatch, variables)

    # When SnapStart is about to snapshot the initialized API function, then its hook stops
    # there, saying why (Lambda publishes no version whose snapshot hooks fail)
    coldstart.prepare(create_app())
    with pytest.raises(ConfigurationError, match=problem):
        coldstart.before_snapshot()


def test_a_listing_without_a_cursor_to_sign_or_read_needs_no_key(
    moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Lambda environment with the public development key
    _weak(monkeypatch, {})

    # When a listing fits one page and was given no cursor
    with TestClient(create_app(allow_dev_identity=True)) as api:
        api.post("/jobs", json={"type": "echo"}, headers=ANN)
        page = api.get("/jobs", headers=ANN)

    # Then it answers: no cursor was signed or read, so no key was used
    assert page.status_code == 200
    assert len(page.json()["items"]) == 1
    assert page.json()["next_cursor"] is None
    assert cursor_keys.cache_info().currsize == 0


def test_outside_lambda_the_development_key_serves_local_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JOBLINE_CURSOR_SECRET")
    assert load_cursor_keys(_settings(), ssm_client, utcnow) == CursorKeys(
        DEVELOPMENT_KEY
    )


def test_a_strong_key_from_the_environment_is_accepted_on_lambda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBLINE_CURSOR_SECRET", FIRST)
    _on_lambda(monkeypatch)
    assert load_cursor_keys(_settings(), ssm_client, utcnow) == CursorKeys(
        FIRST.encode()
    )


# --------------------------------------------------------------------------------- SSM


def test_on_lambda_the_key_comes_from_ssm_once_per_environment(
    ssm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the API function on Lambda, its key an SSM SecureString
    _on_lambda(monkeypatch)
    calls: list[tuple[str, bool]] = []
    ssm_client().meta.events.register(
        "provide-client-params.ssm.GetParameter",
        lambda params, **_: calls.append((params["Name"], params["WithDecryption"])),
    )

    # When its init phase runs, then no parameter was read ...
    coldstart.prepare(create_app())
    assert calls == []

    # ... and when cursors are then signed and read many times
    codec = CursorCodec(cursor_keys)
    for _ in range(3):
        codec.decode(codec.encode(KEY, "ann", ALL), "ann", ALL)

    # Then the parameter was read once, on first use, decrypted, and its value signs
    assert calls == [(NAME, True)]
    assert cursor_keys() == CursorKeys(FIRST.encode())


def test_with_snapstart_the_key_is_read_before_the_snapshot_and_kept_after_restore(
    ssm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the API function on Lambda with SnapStart, its key an SSM SecureString
    _on_lambda(monkeypatch)
    calls: list[str] = []
    ssm_client().meta.events.register(
        "provide-client-params.ssm.GetParameter",
        lambda params, **_: calls.append(params["Name"]),
    )
    coldstart.prepare(create_app())

    # When the version's snapshot is taken, restored, and a cursor is signed and read
    coldstart.before_snapshot()
    coldstart.after_restore()
    codec = CursorCodec(cursor_keys)
    codec.decode(codec.encode(KEY, "ann", ALL), "ann", ALL)

    # Then SSM was read once, before the snapshot: no restored environment reads it again
    assert calls == [NAME]
    assert cursor_keys() == CursorKeys(FIRST.encode())


def test_a_parameter_that_is_not_a_secure_string_is_refused(ssm: Any) -> None:
    ssm.put_parameter(Name=NAME, Value=SECOND, Type="String", Overwrite=True)
    with pytest.raises(ConfigurationError, match="must be a SecureString"):
        load_cursor_keys(_settings(), ssm_client, utcnow)


def test_a_missing_parameter_is_a_clear_configuration_error(
    ssm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBLINE_CURSOR_SECRET_PARAMETER", "/nowhere/cursor-secret")
    with pytest.raises(ConfigurationError, match="ParameterNotFound"):
        load_cursor_keys(_settings(), ssm_client, utcnow)


def test_a_rotation_keeps_old_cursors_readable_for_the_grace_period(ssm: Any) -> None:
    # Given a cursor signed with the first key
    old_cursor = CursorCodec(load_cursor_keys(_settings(), ssm_client, utcnow)).encode(
        KEY, "ann", ALL
    )

    # When the parameter is overwritten with a new key (a new version)
    ssm.put_parameter(Name=NAME, Value=SECOND, Type="SecureString", Overwrite=True)
    written = ssm.get_parameter(Name=NAME)["Parameter"]["LastModifiedDate"]
    settings = _settings()

    # Then a new environment signs with the new key and still reads the old cursor...
    within = load_cursor_keys(
        settings, ssm_client, lambda: written + timedelta(hours=1)
    )
    assert within == CursorKeys(SECOND.encode(), (FIRST.encode(),))
    codec = CursorCodec(within)
    assert codec.decode(old_cursor, "ann", ALL) == KEY
    assert codec.decode(codec.encode(KEY, "ann", ALL), "ann", ALL) == KEY
    assert CursorCodec(SECOND.encode()).decode(
        codec.encode(KEY, "ann", ALL), "ann", ALL
    )
    # ...but not once the grace period (a day by default) has passed
    after = load_cursor_keys(settings, ssm_client, lambda: written + timedelta(days=2))
    assert after == CursorKeys(SECOND.encode())
    with pytest.raises(InvalidCursor):
        CursorCodec(after).decode(old_cursor, "ann", ALL)


def test_the_previous_key_can_also_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBLINE_CURSOR_SECRET", SECOND)
    monkeypatch.setenv("JOBLINE_CURSOR_SECRET_PREVIOUS", FIRST)
    old_cursor = CursorCodec(FIRST.encode()).encode(KEY, "ann", ALL)

    codec = CursorCodec(load_cursor_keys(_settings(), ssm_client, utcnow))

    assert codec.decode(old_cursor, "ann", ALL) == KEY
    assert CursorCodec(SECOND.encode()).decode(
        codec.encode(KEY, "ann", ALL), "ann", ALL
    )


def test_the_worker_never_reads_the_cursor_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # A function that never lists (the worker: no key configured) starts on Lambda
    monkeypatch.delenv("JOBLINE_CURSOR_SECRET")
    _on_lambda(monkeypatch)
    service = bootstrap.get_service()
    assert service.registry.names()
    assert cursor_keys.cache_info().currsize == 0
