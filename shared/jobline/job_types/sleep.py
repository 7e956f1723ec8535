"""`sleep`: waits a number of seconds, never past the Lambda deadline."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from jobline.registry import DeadlineExceeded, JobContext, JobType


class SleepInput(BaseModel):
    """How long to sleep."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(
        ge=0, le=600, allow_inf_nan=False, description="seconds to sleep, 0..600"
    )


def run_sleep(payload: SleepInput, context: JobContext) -> dict[str, float]:
    """Sleep `seconds`; if the attempt's deadline comes first, stop there and fail retryably."""
    available = context.remaining_seconds()
    if payload.seconds > available:
        time.sleep(available)
        raise DeadlineExceeded(
            f"sleep of {payload.seconds}s does not fit in the {available:.3f}s left before the deadline"
        )
    time.sleep(payload.seconds)
    return {"slept": payload.seconds}


JOB_TYPE = JobType(
    name="sleep",
    description="Sleeps for `seconds` (0..600), stopping before the Lambda deadline.",
    input_model=SleepInput,
    handler=run_sleep,
)
