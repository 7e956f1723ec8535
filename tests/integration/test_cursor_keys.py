"""The cursor key: from SSM Parameter Store (a SecureString, read once per execution environment),
refused on Lambda when it is the public development key or shorter than 32 bytes, and rotated
with a grace period in which cursors signed with the previous key still read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
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
from moto import mock_aws

from tests.conftest import REGION

NAME = "/jobline-test/cursor-secret"
FIRST = "first-cursor-key-0123456789abcdef-0123"
SECOND = "second-cursor-key-0123456789abcdef-012"
KEY = {"id": "0" * 32, "sk": "2025-01-15T12:00:00.000000Z#" + "0" * 32, "owner": "ann"}
ALL = JobFilter()


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


@pytest.mark.parametrize(
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
def test_the_api_refuses_to_start_on_lambda_with_a_weak_key(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], problem: str
) -> None:
    # Given a Lambda environment whose cursor key is weak
    monkeypatch.delenv("JOBLINE_CURSOR_SECRET")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    _on_lambda(monkeypatch)

    # When the API function's init phase runs, then it stops there, saying why
    with pytest.raises(ConfigurationError, match=problem):
        coldstart.prepare(create_app())


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

    # When its init phase runs, and then cursors are signed and read many times
    coldstart.prepare(create_app())
    codec = CursorCodec(cursor_keys)
    for _ in range(3):
        codec.decode(codec.encode(KEY, "ann", ALL), "ann", ALL)

    # Then the parameter was read once, decrypted, and its value signs
    assert calls == [(NAME, True)]
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
