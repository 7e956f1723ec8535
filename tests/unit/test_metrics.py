"""CloudWatch metrics in EMF: what each use case counts, with JobType the only dimension, one
document per event, carried by the event's own log line (no line of its own)."""

from __future__ import annotations

from collections import Counter
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any

import pytest
from jobline import metrics
from jobline.models import SubmitRequest
from structlog.testing import capture_logs

from tests.support.builders import ANN, Fakes, after_backoff, delivery_of, message_of
from tests.support.fakes import FakeClock, counting_job_type, failing_handler
from tests.support.services import build_fake_service, build_registry


def _metrics(logs: list[MutableMapping[str, Any]]) -> Counter[tuple[str, str]]:
    """(metric, job type) -> how many values the lines carry; every name a document declares
    has its value on the same line."""
    found: Counter[tuple[str, str]] = Counter()
    for line in logs:
        if "_aws" not in line:
            continue
        [directive] = line["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]:
            assert metric["Name"] in line, (metric, line)
            found[(metric["Name"], line["JobType"])] += 1
    return found


def _documents(logs: list[MutableMapping[str, Any]]) -> list[str]:
    return [line["event"] for line in logs if "_aws" in line]


def test_an_emf_document_names_its_namespace_dimension_metrics_and_values() -> None:
    fields = metrics.emf(
        "echo", counts=["JobsSucceeded"], durations={"AttemptDuration": 12.34}
    )
    assert fields["_aws"]["CloudWatchMetrics"] == [
        {
            "Namespace": "Jobline",
            "Dimensions": [["JobType"]],
            "Metrics": [
                {"Name": "JobsSucceeded"},
                {"Name": "AttemptDuration", "Unit": "Milliseconds"},
            ],
        }
    ]
    assert isinstance(fields["_aws"]["Timestamp"], int)
    assert (fields["JobType"], fields["JobsSucceeded"], fields["AttemptDuration"]) == (
        "echo",
        1,
        12.3,
    )
    with pytest.raises(ValueError):
        metrics.emf("echo", counts=["JobsExploded"])
    with pytest.raises(ValueError):
        metrics.emf("echo", durations={"Lunch": 1.0})
    with pytest.raises(ValueError):
        metrics.emf("echo")


def test_a_job_that_fails_once_then_succeeds_is_counted_at_every_step() -> None:
    clock = FakeClock()
    handler = failing_handler("flaky")
    service, _, queue = build_fake_service(
        build_registry([counting_job_type("count", handler)]), clock=clock
    )

    with capture_logs() as logs:
        job = service.submit(ANN, SubmitRequest(type="count")).job
        service.run(delivery_of(job))
        after_backoff(clock, queue)
        handler.error = None
        service.run(delivery_of(job))

    assert _metrics(logs) == Counter(
        {
            ("JobsSubmitted", "count"): 1,
            ("JobsClaimed", "count"): 2,
            ("QueueDelay", "count"): 2,
            ("AttemptDuration", "count"): 2,
            ("JobsRetried", "count"): 1,
            ("JobsSucceeded", "count"): 1,
        }
    )
    # One document per event, on the event's own line (no line of its own)
    assert _documents(logs) == [
        "job.submitted",
        "job.attempt_failed",
        "job.succeeded",
    ]
    # Never an owner as a dimension
    assert all("owner" not in line for line in logs if "_aws" in line)


def test_the_queue_delay_is_the_claim_minus_when_the_job_was_due() -> None:
    clock = FakeClock()
    service, _, _ = build_fake_service(clock=clock)
    job = service.submit(ANN, SubmitRequest(type="echo", delay_seconds=5)).job
    clock.advance(timedelta(seconds=7))

    with capture_logs() as logs:
        service.run(delivery_of(job))

    [delay] = [line for line in logs if "QueueDelay" in line]
    assert delay["QueueDelay"] == 2000.0


def test_cancels_dead_letters_and_rejections_are_counted(fakes: Fakes) -> None:
    service, _, _ = fakes
    with capture_logs() as logs:
        cancelled = service.submit(ANN, SubmitRequest(type="echo")).job
        service.cancel(ANN, cancelled.id)
        dead = service.submit(
            ANN, SubmitRequest(type="sleep", payload={"seconds": 1})
        ).job
        service.dead_letter(message_of(dead), receive_count=25)
        service.ingest({"type": "nope"}, message_id="m-1", default_owner="ingest")
        service.retry(ANN, cancelled.id)

    found = _metrics(logs)
    assert found[("JobsCancelled", "echo")] == 1
    assert found[("JobsDeadLettered", "sleep")] == 1
    assert found[("JobsRejected", "nope")] == 1
    assert found[("JobsRetried", "echo")] == 1
