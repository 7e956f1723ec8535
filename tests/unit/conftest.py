"""Fixtures of the use-case tests: a fake clock that ticks a second per reading, and a service
over in-memory fakes on it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.builders import Fakes
from tests.support.fakes import FakeClock
from tests.support.services import build_fake_service


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(step=timedelta(seconds=1))


@pytest.fixture
def fakes(clock: FakeClock) -> Fakes:
    return build_fake_service(clock=clock)
