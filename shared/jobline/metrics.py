"""CloudWatch metrics as Embedded Metric Format (EMF) log lines: CloudWatch Logs turns each into
metric values, so counting a job costs no API call and no library (a dozen lines here, against
Powertools Metrics' or aws-embedded-metrics' import at every cold start: docs/benchmarks.md).

One line per event, `JobType` as the only dimension (never the owner: one metric per tenant would
cost money and cardinality). The line carries the job id for the reader, not as a dimension.
"""

from __future__ import annotations

import time
from typing import Any

from jobline.logging import get_logger

log = get_logger("jobline.metrics")

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
        "StaleMessages",
        "DeadLettersIgnored",
    }
)
DURATIONS = frozenset({"AttemptDuration", "QueueDelay"})


def emf(metric: str, value: float, unit: str, job_type: str) -> dict[str, Any]:
    """The EMF fields of one metric value (the `_aws` directive and the value itself)."""
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["JobType"]],
                    "Metrics": [{"Name": metric, "Unit": unit}],
                }
            ],
        },
        "JobType": job_type,
        metric: value,
    }


def count(metric: str, job_type: str, **context: Any) -> None:
    """One more of `metric` (a name in `COUNTS`) for jobs of `job_type`."""
    if metric not in COUNTS:
        raise ValueError(f"unknown count {metric!r}")
    log.info("metric", **emf(metric, 1, "Count", job_type), **context)


def duration(metric: str, milliseconds: float, job_type: str, **context: Any) -> None:
    """A duration of `metric` (a name in `DURATIONS`) for jobs of `job_type`."""
    if metric not in DURATIONS:
        raise ValueError(f"unknown duration {metric!r}")
    log.info(
        "metric",
        **emf(metric, max(0.0, round(milliseconds, 1)), "Milliseconds", job_type),
        **context,
    )
