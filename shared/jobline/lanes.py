"""Lanes: which worker function runs a job type's attempts, from the time one attempt may take
(`JobType.timeout_s`). Pure: the budgets come in from the settings.

- `default`: the worker function (Timeout `WORKER_TIMEOUT_S`, batches of ten, many at once).
- `long`: the long worker (Lambda's 900 s), its own queue, visibility timeout and DLQ.

A lane's budget is its function's Timeout less the deadline margin (room for the outcome write).
A type whose attempts fit neither is refused when it is registered; a job longer than one
invocation checkpoints and continues (`max_runtime_s`, docs/job-types.md).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobline.errors import InvalidJobTypeDeclaration

if TYPE_CHECKING:
    from jobline.registry import JobType


class Lane(enum.StrEnum):
    """A worker function and its queue."""

    DEFAULT = "default"
    LONG = "long"


@dataclass(frozen=True)
class Lanes:
    """The deployment's lanes: each one's function Timeout (seconds) and the deadline margin."""

    worker_timeout_s: int
    long_worker_timeout_s: int | None
    """None: this deployment has no long lane."""
    margin_s: float

    def budget(self, lane: Lane) -> float:
        """Seconds an attempt may run in `lane` (its function's Timeout less the margin; 0 for
        a lane the deployment does not have)."""
        if lane is Lane.DEFAULT:
            return self.worker_timeout_s - self.margin_s
        if self.long_worker_timeout_s is None:
            return 0.0
        return self.long_worker_timeout_s - self.margin_s

    def lane_for(self, timeout_s: float) -> Lane | None:
        """The first lane whose budget holds `timeout_s`; None when none does."""
        for lane in (Lane.DEFAULT, Lane.LONG):
            if timeout_s <= self.budget(lane):
                return lane
        return None

    def describe(self) -> str:
        """The lanes' budgets, for an error message."""
        return ", ".join(
            f"{lane.value} {self.budget(lane):g} s"
            for lane in Lane
            if self.budget(lane)
        )


def refuse_unfit(job_types: Iterable[JobType[Any]], lanes: Lanes) -> None:
    """`InvalidJobTypeDeclaration` for the first type whose attempts fit no lane: refused when
    it is registered (every function's start, `make test`), never when a job is submitted."""
    for job_type in job_types:
        if lanes.lane_for(job_type.timeout_s) is None:
            raise InvalidJobTypeDeclaration(
                job_type.name,
                f"timeout_s {job_type.timeout_s} fits no lane of this deployment "
                f"({lanes.describe()}): declare less, and continue for longer work "
                "(max_runtime_s)",
            )
