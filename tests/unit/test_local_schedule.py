"""The local stack's schedules (`jobline_local.schedule`): the template's `Schedule` events run
as Lambda's EventBridge rules would run them (the worker's FlowSweep)."""

from __future__ import annotations

from typing import Any

import pytest
from jobline_local.poller import InvocationKilled
from jobline_local.schedule import SchedulePoller
from jobline_local.template import (
    ScheduleTrigger,
    load_template,
    schedule_period_s,
    schedule_triggers,
)
from jobline_worker.sweep import is_scheduled


def test_the_templates_schedules_are_the_flow_sweep_every_minute() -> None:
    assert schedule_triggers(load_template()) == [
        ScheduleTrigger(
            function="WorkerFunction",
            handler="jobline_worker.handler.lambda_handler",
            timeout_s=120,
            period_s=60,
        )
    ]


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(3 seconds)", 3)],
)
def test_rate_expressions_give_their_period(expression: str, seconds: int) -> None:
    assert schedule_period_s(expression) == seconds


@pytest.mark.parametrize("expression", ["cron(0 * * * ? *)", "rate(one minute)"])
def test_other_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        schedule_period_s(expression)


def test_a_disabled_schedule_does_not_run() -> None:
    template = load_template()
    events = template["Resources"]["WorkerFunction"]["Properties"]["Events"]
    events["FlowSweep"]["Properties"]["Enabled"] = False
    assert schedule_triggers(template) == []


def test_each_period_invokes_the_function_with_a_scheduled_event() -> None:
    # Given a schedule whose handler is killed on its first invocation
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        events.append(event)
        if len(events) == 1:
            raise InvocationKilled("the environment died")

    trigger = ScheduleTrigger("WorkerFunction", "h.handler", 120, period_s=0)
    poller = SchedulePoller(trigger, handler, region="eu-west-1", function_name="fn")

    # When two periods pass
    assert poller.poll_once() is True
    assert poller.poll_once() is True

    # Then the function was invoked twice with EventBridge's scheduled event (the kill lost
    # only its own invocation), which the worker tells from an SQS batch
    assert poller.invocations == 2
    assert [(e["source"], e["detail-type"], e["region"]) for e in events] == [
        ("aws.events", "Scheduled Event", "eu-west-1")
    ] * 2
    assert all(is_scheduled(event) for event in events)
    assert not is_scheduled({"Records": []})
