"""Retry delays: exponential backoff with full jitter, at least a second, never past the cap."""

from __future__ import annotations

import random

import pytest
from jobline.backoff import Backoff
from jobline.limits import MAX_RETRY_DELAY_S, SQS_MAX_VISIBILITY_S


class Highest(random.Random):
    """Always draws the top of the range: the ceiling of each attempt."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest(random.Random):
    """Always draws the bottom of the range."""

    def uniform(self, a: float, b: float) -> float:
        return a


def test_the_ceiling_doubles_with_each_attempt_up_to_the_cap() -> None:
    backoff = Backoff(base_s=2, cap_s=60)
    assert [backoff.delay(attempt, Highest()) for attempt in range(1, 8)] == [
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]


def test_a_draw_of_zero_still_waits_the_floor() -> None:
    assert Backoff(base_s=2, cap_s=60).delay(3, Lowest()) == 1
    assert Backoff(base_s=2, cap_s=60, floor_s=5).delay(3, Lowest()) == 5


def test_attempt_zero_waits_like_attempt_one() -> None:
    assert Backoff(base_s=7, cap_s=60).delay(0, Highest()) == 7


def test_the_cap_cannot_exceed_what_sqs_accepts() -> None:
    backoff = Backoff(base_s=100_000, cap_s=100_000)
    assert (
        backoff.delay(1, Highest())
        == MAX_RETRY_DELAY_S
        == SQS_MAX_VISIBILITY_S
        == 43_200
    )


@pytest.mark.parametrize("attempt", [1, 2, 5, 10, 20])
def test_full_jitter_stays_within_floor_and_ceiling(attempt: int) -> None:
    # Given a seeded generator and the default backoff (2 s base, 900 s cap)
    backoff = Backoff()
    rng = random.Random(attempt)
    ceiling = min(900, 2 * 2 ** (attempt - 1))

    # When many delays are drawn
    delays = [backoff.delay(attempt, rng) for _ in range(500)]

    # Then none is zero or past the ceiling, and they spread over the whole range
    assert all(1 <= delay <= ceiling for delay in delays)
    assert min(delays) <= max(1, ceiling // 4)
    assert max(delays) >= ceiling * 3 // 4


def test_the_same_seed_gives_the_same_delays() -> None:
    backoff = Backoff(base_s=3, cap_s=300)
    first = [backoff.delay(n, random.Random(42)) for n in range(1, 6)]
    again = [backoff.delay(n, random.Random(42)) for n in range(1, 6)]
    assert first == again
