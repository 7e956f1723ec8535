"""`steps`: counts `steps` steps of `step_seconds` each, saving its place at most once a second
(`context.checkpoint`) and going on in a new invocation before the current one's time runs out
(`Continue`): a job longer than one Lambda invocation, and one a dead worker does not send back to
the start. The example for docs/job-types.md, "Lanes and long jobs".

The result says where each invocation started (`starts`): a continuation starts where the last
one stopped, a successor of a dead worker where the last checkpoint was, never at 0 again."""

from __future__ import annotations

import time
from typing import Any

from jobline.registry import Continue, JobContext

from jobline_examples.inputs import StepsInput

MARGIN_S = 2.0
"""Time kept in hand before the deadline: a step that might not end before it is left to the next
invocation."""
CHECKPOINT_EVERY_S = 1.0
"""At most one checkpoint (one write) a second."""


def run_steps(payload: StepsInput, context: JobContext) -> Any:
    """Count from the saved place (`context.state`) to `steps`; continue when the next step
    might not fit before the deadline."""
    state = context.state or {"done": 0, "starts": []}
    done = int(state["done"])
    starts = [*state["starts"], done]
    saved_at = time.monotonic()
    while done < payload.steps:
        if context.remaining_seconds() < payload.step_seconds + MARGIN_S:
            return Continue({"done": done, "starts": starts})
        context.raise_if_cancelled()
        time.sleep(payload.step_seconds)
        done += 1
        if time.monotonic() - saved_at >= CHECKPOINT_EVERY_S:
            context.checkpoint({"done": done, "starts": starts})
            context.report_progress(
                100.0 * done / payload.steps, f"{done}/{payload.steps}"
            )
            saved_at = time.monotonic()
    return {"steps": done, "starts": starts}
