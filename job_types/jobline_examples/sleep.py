"""`sleep`'s handler: waits a number of seconds, reporting progress and checking for cancellation every
second, and never past the Lambda deadline."""

from __future__ import annotations

import time

from jobline.registry import DeadlineExceeded, JobContext

from jobline_examples.inputs import SleepInput

CHECKPOINT_S = 1.0


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
