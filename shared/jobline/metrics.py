"""CloudWatch metrics in Embedded Metric Format (EMF), one document per event: the log line that says
what happened to a job also carries its metrics (`emf(...)` splatted into that line), so counting a
job costs no API call, no library and no line of its own (CloudWatch Logs bills every byte it
ingests: docs/benchmarks.md, "Logs in the bill").

`JobType` is the only dimension (never the owner: one metric per tenant would cost money and
cardinality). The line carries the job id for the reader, not as a dimension.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

NAMESPACE = "Jobline"
COUNTS = frozenset(
    {
        "JobsSubmitted",
        "JobsClaimed",
        "JobsSucceeded",
        "JobsFailed",
        "JobsRetried",
        "JobsCancelled",
        "JobsDeadLettered",
        "JobsRejected",
        "JobsContinued",
        "StaleMessages",
        "DeadLettersIgnored",
    }
)
DURATIONS = frozenset({"AttemptDuration", "QueueDelay"})


def emf(
    job_type: str,
    *,
    counts: Sequence[str] = (),
    durations: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The EMF fields of one event's metrics (the `_aws` directive, the dimension and each value):
    one more of each name in `counts` (names in `COUNTS`), and each duration in milliseconds
    (names in `DURATIONS`), for jobs of `job_type`. Splat them into the event's log line."""
    durations = durations or {}
    unknown = [name for name in counts if name not in COUNTS] + [
        name for name in durations if name not in DURATIONS
    ]
    if unknown or not (counts or durations):
        raise ValueError(f"unknown or no metrics: {unknown}")
    values: dict[str, Any] = dict.fromkeys(counts, 1)
    values.update((name, max(0.0, round(ms, 1))) for name, ms in durations.items())
    # A count needs no unit (CloudWatch's None sums the same); a duration says it is in ms.
    units = [{"Name": name} for name in counts] + [
        {"Name": name, "Unit": "Milliseconds"} for name in durations
    ]
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {"Namespace": NAMESPACE, "Dimensions": [["JobType"]], "Metrics": units}
            ],
        },
        "JobType": job_type,
        **values,
    }
