"""A local EventBridge schedule: invoke a function with a scheduled event once per period, as
the template's `Schedule` event source does (the flow sweep's, `FlowSweep`)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from jobline.logging import bind_invocation, get_logger

from jobline_local.mapping import MappingThread
from jobline_local.poller import InvocationKilled, LambdaContext, LambdaHandler
from jobline_local.template import ScheduleTrigger

log = get_logger(__name__)


def scheduled_event(region: str, rule: str) -> dict[str, Any]:
    """An EventBridge scheduled event, as Lambda receives it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:123456789012:rule/{rule}"],
        "detail": {},
    }


class SchedulePoller(MappingThread):
    """Invokes `handler` every `trigger.period_s` (the first time one period after the start)
    until stopped; a failed invocation is logged, and the next period's runs as usual."""

    def __init__(
        self,
        trigger: ScheduleTrigger,
        handler: LambdaHandler,
        *,
        region: str,
        function_name: str,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.trigger = trigger
        self.handler = handler
        self._region = region
        self.function_name = function_name
        self._stop = stop_event or threading.Event()
        self.invocations = 0

    def started(self) -> None:
        log.info(
            "poller.started",
            function=self.function_name,
            schedule_s=self.trigger.period_s,
        )

    def poll_once(self) -> bool:
        """Wait one period, then invoke (False: stopped meanwhile)."""
        if self._stop.wait(self.trigger.period_s):
            return False
        context = LambdaContext(
            self.function_name, self.trigger.timeout_s, self._region
        )
        bind_invocation(context.aws_request_id, self.function_name)
        self.invocations += 1
        try:
            self.handler(scheduled_event(self._region, self.function_name), context)
        except InvocationKilled:
            log.warning("poller.invocation_killed", function=self.function_name)
        return True
