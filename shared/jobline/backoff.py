"""Retry delays: exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
And Jitter"): delay = uniform(0, min(cap, base * 2 ** (attempt - 1))), never below `floor`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from jobline.limits import MAX_RETRY_DELAY_S, RETRY_BASE_S, RETRY_CAP_S


@dataclass(frozen=True)
class Backoff:
    """Backoff parameters in seconds."""

    base_s: float = RETRY_BASE_S
    cap_s: float = RETRY_CAP_S
    floor_s: int = 1

    def delay(self, attempt: int, rng: random.Random | None = None) -> int:
        """Whole seconds to wait before attempt `attempt + 1` (at least `floor_s`, at most the cap)."""
        ceiling = min(
            self.cap_s, self.base_s * 2 ** max(0, attempt - 1), MAX_RETRY_DELAY_S
        )
        drawn = (rng or random).uniform(0, ceiling)
        return max(self.floor_s, min(round(drawn), MAX_RETRY_DELAY_S))
