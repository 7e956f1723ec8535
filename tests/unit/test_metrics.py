"""CloudWatch metrics as EMF log lines: what each use case counts, with JobType the only
dimension, and lines CloudWatch reads as metrics."""

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
    found: Counter[tuple[str, str]] = Counter()
    for line in logs:
        if line["event"] != "metric":
            continue
        [directive] = line["_aws"]["CloudWatchMetrics"]
        [metric] = directive["Metrics"]
        found[(metric["Name"], line["JobType"])] += 1
    return found


def test_an_emf_line_names_its_namespace_dimension_metric_and_value() -> None:
    fields = metrics.emf("JobsSubmitted", 1, "Count", "echo")
    assert fields["_aws"]["CloudWatchMetrics"] == [
        {
            "Namespace": "Jobline",
            "Dimensions": [["JobType"]],
            "Metrics": [{"Name": "JobsSubmitted", "Unit": "Count"}],
        }
    ]
    assert isinstance(fields["_aws"]["Timestamp"], int)
    assert (fields["JobType"], fields["JobsSubmitted"]) == ("echo", 1)
    with pytest.raises(ValueError):
        metrics.count("JobsExploded", "echo")


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
    # Never an owner as a dimension
    assert all("owner" not in line for line in logs if line["event"] == "metric")


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
