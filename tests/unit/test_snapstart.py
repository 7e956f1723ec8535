"""SnapStart readiness of the API function: init builds everything, the snapshot holds the cursor
keys, and a restore renews only what the environments restored from one snapshot must not share
(random state, pooled connections), keeping what they may share (settings, session, clients,
service, cursor keys). The hooks are called directly, as the runtime calls them."""

from __future__ import annotations

import random

import pytest
import snapshot_restore_py  # type: ignore[import-untyped]
from jobline import bootstrap
from jobline.aws import clients
from jobline.config import get_settings
from jobline_api import coldstart, handler


def _environment() -> tuple[object, ...]:
    return (
        get_settings(),
        clients.aws_session(),
        bootstrap.dynamodb_client(),
        bootstrap.sqs_client(),
        bootstrap.get_service(),
        bootstrap.cursor_keys(),
    )


def _connection_pools(client: object) -> int:
    """How many connection pools botocore's HTTP session holds for `client` (one per host it
    talked to); `BaseClient.close` empties them."""
    manager = client._endpoint.http_session._manager  # type: ignore[attr-defined]
    return len(manager.pools)


def _connect(client: object) -> None:
    """Open a pooled connection the way a call would (no request is sent)."""
    endpoint = client._endpoint  # type: ignore[attr-defined]
    endpoint.http_session._manager.connection_from_url(endpoint.host)


def test_initialize_builds_the_service_and_primes_the_app() -> None:
    # When the init phase runs (on Lambda: while the handler module is imported)
    coldstart.initialize(handler.app, handler.lambda_handler)

    # Then the service is built once and attached to the app
    first, again = _environment(), _environment()
    assert all(built is cached for built, cached in zip(first, again, strict=True))
    assert handler.app.state.service is first[4]


def test_the_snapshot_holds_the_cursor_keys() -> None:
    # Given an initialized environment, which has not read the cursor keys (no listing yet)
    coldstart.prepare(handler.app)
    assert bootstrap.cursor_keys.cache_info().currsize == 0

    # When SnapStart is about to snapshot it
    coldstart.before_snapshot()

    # Then the keys are loaded: every environment restored from the snapshot has them
    assert bootstrap.cursor_keys.cache_info().currsize == 1


def test_after_restore_renews_random_state_and_connections_and_keeps_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an environment initialized before its snapshot, with connections in its clients'
    # pools and a random state every restored copy would share
    coldstart.prepare(handler.app)
    coldstart.before_snapshot()
    before = _environment()
    for client in before[2:4]:
        _connect(client)
        assert _connection_pools(client) == 1
    jitter = bootstrap._RANDOM  # the services' random source (retry jitter)
    random.seed(1234)
    jitter.seed(1234)
    shared_state, shared_jitter_state = random.getstate(), jitter.getstate()
    # (a setting that changed would be picked up only by building again: nothing may rebuild)
    monkeypatch.setenv("JOBLINE_TABLE_NAME", "jobline-restored-table")

    # When SnapStart restores it and runs the after-restore hook
    coldstart.after_restore()

    # Then random and the service's retry jitter no longer follow the snapshot's sequence ...
    assert random.getstate() != shared_state
    assert jitter.getstate() != shared_jitter_state
    # ... the clients' pools are empty (their next call connects afresh) ...
    assert [_connection_pools(client) for client in before[2:4]] == [0, 0]
    # ... and settings, session, clients, service and cursor keys are the snapshot's: nothing
    # was rebuilt, and SSM is not read again
    assert all(old is new for old, new in zip(before, _environment(), strict=True))
    assert get_settings().table_name != "jobline-restored-table"
    assert handler.app.state.service is before[4]


def test_after_restore_creates_no_client_the_snapshot_did_not_have() -> None:
    # Given a snapshot whose environment created only the DynamoDB client (the API's)
    coldstart.prepare(handler.app)

    # When it is restored
    coldstart.after_restore()

    # Then closing connections did not create the other clients
    assert bootstrap.dynamodb_client.cache_info().currsize == 1
    assert bootstrap.sqs_client.cache_info().currsize == 0
    assert bootstrap.ssm_client.cache_info().currsize == 0


def test_the_hooks_are_registered_with_the_runtime() -> None:
    # Then Lambda's runtime finds both hooks where snapshot-restore-py keeps them
    assert (coldstart.before_snapshot, (), {}) in (
        snapshot_restore_py.get_before_snapshot()
    )
    assert (coldstart.after_restore, (), {}) in snapshot_restore_py.get_after_restore()
