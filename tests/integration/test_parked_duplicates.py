"""A running job's duplicate messages don't walk to the DLQ (issue 22), on the whole local stack
(the template's event source mappings, as `make run` has them) with the worker's timeout scaled
down as the soak does: a job that runs for the worker's whole time limit, with three duplicate
copies of its message arriving while it runs, is never dead-lettered, and each copy burns at
most a handful of receives (it is parked until the lease's end, then acknowledged).

The jobs queue's visibility timeout is one second here, so that a copy a worker merely handed
back (as it was before: "bounced") would be received again every second while the job runs, and
walk towards the DLQ; a parked copy is hidden until the lease ends. The job's own message comes
back too once its second is up (it is then a duplicate like the others). The receives are counted
per message id by a wrapper around the worker handler the stack imports (`ApproximateReceiveCount`
of each record it is handed), as the soak wraps its handlers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from jobline import bootstrap
from jobline.config import Settings
from jobline.registry import JobContext, JobTypeRegistry
from jobline_local import stack as local_stack_module
from jobline_local.poller import import_handler
from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack
from jobline_local.template import load_template

from tests.support.fakes import AnyInput, job_type_of

WORKER_TIMEOUT_S = 10
"""The worker's (scaled) Lambda timeout: a claim's lease lasts this long."""
DEADLINE_MARGIN_MS = 3000
"""The worker stops waiting for a handler this long before its timeout."""
VISIBILITY_S = 1
"""The jobs queue's visibility timeout (see the module docstring)."""
COPIES = 3
HANDFUL = 3
"""The most receives a parked copy may take: parked until the lease ends, then acknowledged
(2), and one to spare; a copy handed back each time would take about one a second."""
WAIT_S = 60.0


@dataclass
class Receives:
    """Every record the worker handler and the dead-letter consumer were handed."""

    worker: dict[str, list[int]] = field(default_factory=dict)
    """ApproximateReceiveCount of each receive, per message id."""
    dead_letters: list[str] = field(default_factory=list)
    """The body of each record the dead-letter consumer was handed."""
    copies: set[str] = field(default_factory=set)
    """The message ids of the copies the test sent."""
    copies_received: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def worker_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        def counted(event: dict[str, Any], context: Any) -> Any:
            with self.lock:
                for record in event["Records"]:
                    count = int(record["attributes"]["ApproximateReceiveCount"])
                    self.worker.setdefault(record["messageId"], []).append(count)
                self._all_copies_received()
            return handler(event, context)

        return counted

    def sent_copy(self, message_id: str) -> None:
        with self.lock:
            self.copies.add(message_id)
            self._all_copies_received()

    def _all_copies_received(self) -> None:
        if len(self.copies) == COPIES and self.copies <= set(self.worker):
            self.copies_received.set()

    def dead_letter_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        def seen(event: dict[str, Any], context: Any) -> Any:
            with self.lock:
                self.dead_letters += [record["body"] for record in event["Records"]]
            return handler(event, context)

        return seen


def runs_its_whole_time_limit(
    receives: Receives,
) -> Callable[[AnyInput, JobContext], Any]:
    """A handler that waits until every copy of its message was received (by construction, then,
    while it runs), and then runs out its time limit."""

    def handler(payload: AnyInput, context: JobContext) -> Any:
        copies_seen = receives.copies_received.wait(context.remaining_seconds())
        time.sleep(max(0.0, context.remaining_seconds() - 0.5))
        return {"copies_seen_while_running": copies_seen, "run": context.run}

    return handler


@pytest.fixture
def receives() -> Receives:
    return Receives()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, receives: Receives) -> Iterator[LocalStack]:
    """The whole stack, its worker's timeout scaled down, its worker and dead-letter handlers
    counted, and a `whole_limit` job type registered."""
    default = bootstrap.default_registry

    def with_whole_limit(settings: Settings | None = None) -> JobTypeRegistry:
        types = default(settings)
        types.register(job_type_of("whole_limit", runs_its_whole_time_limit(receives)))
        return types

    def counted(spec: str) -> Any:
        handler = import_handler(spec)
        if spec.startswith("jobline_worker."):
            return receives.worker_handler(handler)
        if spec.startswith("jobline_dead_letters."):
            return receives.dead_letter_handler(handler)
        return handler

    monkeypatch.setattr(bootstrap, "default_registry", with_whole_limit)
    monkeypatch.setattr(local_stack_module, "import_handler", counted)
    monkeypatch.setenv("JOBLINE_DEADLINE_MARGIN_MS", str(DEADLINE_MARGIN_MS))
    template = load_template()
    resources = template["Resources"]
    resources["WorkerFunction"]["Properties"]["Timeout"] = WORKER_TIMEOUT_S
    resources["JobsQueue"]["Properties"]["VisibilityTimeout"] = VISIBILITY_S
    settings = LocalSettings(
        host="127.0.0.1",
        api_port=0,
        moto_port=0,
        prefix=f"jobline-park-{uuid.uuid4().hex[:8]}",
        poll_wait_seconds=1,
        shutdown_timeout_seconds=5,
        state_file=None,
    )
    with LocalStack(settings, set_env=monkeypatch.setenv, template=template) as running:
        yield running


def queue_counts(stack: LocalStack, queue: str) -> list[int]:
    """Visible, in flight and delayed messages of one of the stack's queues."""
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.provisioned.queue_urls[queue],
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return [int(value) for value in attributes.values()]


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_duplicates_of_a_job_running_its_whole_time_limit_are_parked_not_dead_lettered(
    stack: LocalStack, receives: Receives
) -> None:
    with httpx.Client(
        base_url=stack.api_url, headers={"X-Dev-User": "ann"}, timeout=10
    ) as client:
        # Given a job that runs for the worker's whole time limit, running
        submitted = client.post("/jobs", json={"type": "whole_limit", "payload": {}})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        wait_for(
            lambda: client.get(f"/jobs/{job_id}").json()["status"] == "running",
            "the job to run",
        )
        (original,) = receives.worker

        # When three duplicate copies of its message arrive while it runs
        body = json.dumps(
            {"job_id": job_id, "owner": "ann", "job_type": "whole_limit", "run": 1}
        )
        for _ in range(COPIES):
            sent = stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
            receives.sent_copy(sent["MessageId"])

        # Then it runs to the end of its time limit and succeeds, once...
        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
            return job if job["status"] not in ("queued", "running") else None

        job = wait_for(finished, "the job to finish")
        assert (job["status"], job["run"], job["attempts"]) == ("succeeded", 1, 1)
        assert job["result"] == {"copies_seen_while_running": True, "run": 1}
        assert [(e["run"], e["attempt"], e["error"]) for e in job["history"]] == [
            (1, 1, None)
        ]
        # ...every copy is acknowledged once it comes back after the lease...
        wait_for(
            lambda: queue_counts(stack, "JobsQueue") == [0, 0, 0],
            "the copies to be acknowledged",
        )
        assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"

    # ...having burnt at most a handful of receives each (the job's own message too)
    with receives.lock:
        counts = {mid: max(seen) for mid, seen in receives.worker.items()}
        dead_letters = list(receives.dead_letters)
    assert set(counts) == {original, *receives.copies}
    assert all(1 <= count <= HANDFUL for count in counts.values()), counts
    # ...and nothing was dead-lettered: the consumer was handed nothing, the DLQ holds nothing
    assert dead_letters == []
    assert queue_counts(stack, "JobsDeadLetterQueue") == [0, 0, 0]
