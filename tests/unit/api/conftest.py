"""The API over a fake service, and a test client for it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from jobline_api.app import create_app

from tests.support.fakes import (
    FakeClock,
)
from tests.support.services import build_fake_service
from tests.unit.api.calls import Fakes


@pytest.fixture
def fakes() -> Fakes:
    return build_fake_service(
        clock=FakeClock(step=timedelta(seconds=1)), max_payload_bytes=4096
    )


@pytest.fixture
def client(fakes: Fakes) -> Iterator[TestClient]:
    service = fakes[0]
    app = create_app(service_factory=lambda: service, allow_dev_identity=True)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
