"""The flow sweep (docs/flow-control.md), run by the worker on its `FlowSweep` schedule
(template.yaml): wake the parked jobs a lost wake left behind, give back permits of jobs that no
longer run, remove waiters of jobs that no longer wait."""

from __future__ import annotations

from typing import Any

from jobline.logging import get_logger
from jobline.service import JobService

log = get_logger(__name__)

SCHEDULED = "aws.events"
"""The `source` of an EventBridge scheduled event."""


def is_scheduled(event: dict[str, Any]) -> bool:
    """Whether `event` is the schedule's (not an SQS batch)."""
    return event.get("source") == SCHEDULED and "Records" not in event


def run_sweep(service: JobService) -> dict[str, int]:
    """One sweep; how many jobs it woke (flow control off: none)."""
    if service.admission is None:
        log.info("flow.sweep_skipped", reason="flow control is off")
        return {"woken": 0}
    return {"woken": service.admission.sweep()}
