"""AWS clients are created on first use, once per execution environment; a batch's worker threads
can get there together, and botocore's session must never create two clients at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from jobline import bootstrap
from jobline.aws import clients


class SlowSession:
    """A session whose client creation takes a while and records how many overlap."""

    def __init__(self) -> None:
        self.active = 0
        self.most = 0
        self.created: list[str] = []
        self._lock = threading.Lock()

    def create_client(self, service: str, **_: Any) -> object:
        with self._lock:
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(0.02)
        with self._lock:
            self.active -= 1
            self.created.append(service)
        return object()


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowSession]:
    monkeypatch.setenv("JOBLINE_TABLE_NAME", "jobs")
    monkeypatch.setenv("JOBLINE_QUEUE_URL", "https://sqs.example/q")
    bootstrap.reset()
    fake = SlowSession()
    monkeypatch.setattr(clients, "aws_session", lambda: fake)
    yield fake
    monkeypatch.undo()
    bootstrap.reset()


def test_threads_asking_for_clients_together_never_create_two_at_once(
    session: SlowSession,
) -> None:
    factories = [bootstrap.sqs_client, bootstrap.dynamodb_client] * 8
    barrier = threading.Barrier(len(factories))

    def first_use(factory: Any) -> object:
        barrier.wait()
        return factory()

    with ThreadPoolExecutor(max_workers=len(factories)) as pool:
        clients = list(pool.map(first_use, factories))

    assert session.most == 1
    assert all(client is not None for client in clients)
    # And once created, a client is the environment's: asked again, nothing is created
    created = len(session.created)
    assert bootstrap.sqs_client() is bootstrap.sqs_client()
    assert len(session.created) == created
