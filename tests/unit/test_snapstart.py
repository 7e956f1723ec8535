"""SnapStart readiness of the API function: init builds everything, a restore renews what
restored environments must not share. The hooks are called directly, as the runtime calls them."""

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
        clients.aws_session(),
        bootstrap.dynamodb_client(),
        bootstrap.sqs_client(),
        bootstrap.get_service(),
    )


def test_initialize_builds_the_service_and_primes_the_app() -> None:
    # When the init phase runs (on Lambda: while the handler module is imported)
    coldstart.initialize(handler.app, handler.lambda_handler)

    # Then the service is built once and attached to the app
    first, again = _environment(), _environment()
    assert all(built is cached for built, cached in zip(first, again, strict=True))
    assert handler.app.state.service is first[3]


def test_after_restore_renews_session_clients_service_and_random_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an environment initialized before its snapshot, whose random state every restored
    # copy would share
    coldstart.prepare(handler.app)
    before = _environment()
    random.seed(1234)
    shared_state = random.getstate()
    monkeypatch.setenv("JOBLINE_TABLE_NAME", "jobline-restored-table")

    # When SnapStart restores it and runs the after-restore hook
    coldstart.after_restore(handler.app)

    # Then the session (credentials), both clients (connections) and the service are new ...
    after = _environment()
    assert [old is new for old, new in zip(before, after, strict=True)] == [False] * 4
    assert handler.app.state.service is after[3]
    # ... built from settings read again ...
    assert get_settings().table_name == "jobline-restored-table"
    # ... and random no longer follows the snapshot's sequence
    assert random.getstate() != shared_state


def test_the_after_restore_hook_is_registered_with_the_runtime() -> None:
    # Then Lambda's runtime finds the hook where snapshot-restore-py keeps it
    assert (
        coldstart.after_restore,
        (handler.app,),
        {},
    ) in snapshot_restore_py.get_after_restore()
