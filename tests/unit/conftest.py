"""Fixtures of the use-case tests: a fake clock that ticks a second per reading, a service over
in-memory fakes on it, and both handler kinds for the tests of the worker's semantics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.support.builders import Fakes
from tests.support.fakes import FakeClock
from tests.support.handlers import KINDS, HandlerKind, declared_as
from tests.support.services import build_fake_service


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(step=timedelta(seconds=1))


@pytest.fixture
def fakes(clock: FakeClock) -> Fakes:
    return build_fake_service(clock=clock)


@pytest.fixture(params=KINDS)
def handler_kind(request: pytest.FixtureRequest) -> Iterator[HandlerKind]:
    """Run the test once with plain handlers, once with `async def` ones (`job_type_of`)."""
    kind: HandlerKind = request.param
    with declared_as(kind):
        yield kind
