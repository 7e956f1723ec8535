"""`sleep`: waits a number of seconds, reporting progress and checking for cancellation every
second, and never past the Lambda deadline."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from jobline.registry import DeadlineExceeded, JobContext, JobType

CHECKPOINT_S = 1.0


class SleepInput(BaseModel):
    """How long to sleep."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(
        ge=0, le=600, allow_inf_nan=False, description="seconds to sleep, 0..600"
    )


def run_sleep(payload: SleepInput, context: JobContext) -> dict[str, float]:
    """Sleep `seconds` in slices of at most a second; stop on cancellation (`JobCancelled`).
    A sleep that cannot end before the deadline fails at once (`DeadlineExceeded`, retryable)."""
    if payload.seconds > context.remaining_seconds():
        raise DeadlineExceeded(
            f"sleep of {payload.seconds}s does not fit in the "
            f"{context.remaining_seconds():.3f}s left before the deadline"
        )
    started = time.monotonic()
    end = started + payload.seconds
    while (left := end - time.monotonic()) > 0:
        context.raise_if_cancelled()
        time.sleep(min(CHECKPOINT_S, left))
        elapsed = time.monotonic() - started
        context.report_progress(
            min(100.0, 100.0 * elapsed / payload.seconds), f"slept {elapsed:.1f}s"
        )
    return {"slept": payload.seconds}


JOB_TYPE = JobType(
    name="sleep",
    description="Sleeps for `seconds` (0..600), reporting progress and honouring cancellation "
    "every second, stopping before the Lambda deadline.",
    input_model=SleepInput,
    handler=run_sleep,
)
