"""Flow control under moto, on the template's own jobs table, control table and queue (issue 18):
a limit of 2 per owner is never exceeded while jobs run at once on threads, another owner's jobs
run meanwhile, waiting burns no receive and no attempt, and no permit is leaked (nothing held,
nothing waiting at the end) when a holder fails, is cancelled, dies and is dead-lettered, dies and
is reclaimed, or has the answers of its outcome and its release lost.

Calls to DynamoDB go one at a time (`Faulty`, as `test_races.SerializedDynamoDB`: moto checks
a write's condition and applies it in separate steps, real DynamoDB does not); which thread goes
first is up to the threads.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from jobline import bootstrap
from jobline.aws.control_table import DynamoFlowStore
from jobline.aws.repository import DynamoJobRepository
from jobline.bootstrap import build_service
from jobline.clock import utcnow
from jobline.errors import RateLimited
from jobline.flow import Concurrency, Priority, RateLimit
from jobline.models import (
    Delivery,
    Job,
    JobFilter,
    JobMessage,
    JobStatus,
    SubmitRequest,
)
from jobline.registry import JobContext, JobHandlerError, JobType, JobTypeRegistry
from jobline.service import JobService, RunOutcome
from jobline_local.poller import InvocationKilled
from pydantic import BaseModel, ConfigDict

from tests.conftest import MotoStack

WAIT_S = 10.0
"""Upper bound of every wait in this file; a healthy run never comes near it."""
ROUNDS = 30
"""Receive-and-run rounds allowed for every job to end (each round runs what is visible)."""


class Faulty:
    """A DynamoDB client whose calls run one at a time, with scripted faults: `kill` raises
    `InvocationKilled` instead of the call (the worker died before it), `lose` makes the call
    and then raises a read timeout (applied, its answer lost; botocore's own retries would send
    it again, as the adapter's retry does here)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.kill: list[Callable[[str, dict[str, Any]], bool]] = []
        self.lose: list[Callable[[str, dict[str, Any]], bool]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                for script in (self.kill, self.lose):
                    hit = next((s for s in script if s(name, kwargs)), None)
                    if hit is not None:
                        script.remove(hit)
                        if script is self.kill:
                            raise InvocationKilled(f"killed before {name}")
                        method(*args, **kwargs)
                        raise ReadTimeoutError(endpoint_url="moto")
                return method(*args, **kwargs)

        return call


def writes_job(job_id: str, status: str) -> Callable[[str, dict[str, Any]], bool]:
    """A write to the jobs table moving `job_id` to `status` (an attempt's outcome)."""

    def matches(operation: str, request: dict[str, Any]) -> bool:
        values = request.get("ExpressionAttributeValues", {})
        return (
            operation == "update_item"
            and request.get("Key", {}).get("id", {}).get("S") == job_id
            and {"S": status} in values.values()
        )

    return matches


def releases(job_id: str) -> Callable[[str, dict[str, Any]], bool]:
    """The release of `job_id`'s permit in the control table."""

    def matches(operation: str, request: dict[str, Any]) -> bool:
        names = request.get("ExpressionAttributeNames", {})
        return (
            operation == "update_item"
            and request.get("UpdateExpression", "").startswith("REMOVE")
            and names.get("#h") == f"h:{job_id}"
        )

    return matches


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")
    do: str = "run"
    owner: str


@dataclass
class Handler:
    """The `limited` type's handler: counts who runs at once per owner (the peak is what the
    limit bounds), holds a job named by `hold` until the test releases it, and ends as its
    payload says (`run`, `fail`, `cancel`: stop at the next checkpoint)."""

    limit: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    full: dict[str, threading.Event] = field(default_factory=dict)
    """Per owner: set once `limit` of its jobs ran at once (each holder waits for it)."""
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    hold: str | None = None

    def __call__(self, payload: Input, context: JobContext) -> dict[str, bool]:
        owner = payload.owner
        with self.lock:
            self.runs[context.job_id] += 1
            self.running[owner] += 1
            self.peak[owner] = max(self.peak[owner], self.running[owner])
            full = self.full.setdefault(owner, threading.Event())
            if self.running[owner] >= self.limit:
                full.set()
        try:
            if context.job_id == self.hold:
                self.entered.set()
                assert self.release.wait(WAIT_S)
            elif owner == "ann":
                full.wait(
                    WAIT_S
                )  # overlap: each holder waits until the key was full once
            if payload.do == "fail":
                raise JobHandlerError("it failed", retryable=False)
            if payload.do == "cancel":
                context.raise_if_cancelled()
            return {"ran": True}
        finally:
            with self.lock:
                self.running[owner] -= 1


class Flow:
    """A service with flow control over the template's tables, and what a test looks at."""

    def __init__(self, stack: MotoStack, limit: int) -> None:
        self.stack = stack
        self.control = stack.provisioned.tables["ControlTable"]
        self.client = Faulty(stack.dynamodb)
        self.handler = Handler(limit)
        limited = JobType(
            name="limited",
            description="Runs under a concurrency limit per owner.",
            input_model=Input,
            handler=self.handler,
            concurrency=(Concurrency(name="per-owner", key="{owner}", limit=limit),),
        )
        self.service: JobService = build_service(
            repository=DynamoJobRepository(self.client, stack.table),  # type: ignore[arg-type]
            registry=JobTypeRegistry([limited]),
            flow_store=DynamoFlowStore(self.client, self.control),  # type: ignore[arg-type]
        )
        self.receive_counts: list[int] = []

    def submit(self, owner: str, do: str = "run") -> Job:
        request = SubmitRequest(type="limited", payload={"do": do, "owner": owner})
        return self.service.submit(owner, request).job

    def get(self, job: Job) -> Job:
        found = self.service.get(job.owner, job.id)
        return found

    def control_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.stack.dynamodb.scan(TableName=self.control)[
            "Items"
        ]
        return items

    def held(self) -> int:
        """Permits held in the control table (every key)."""
        return sum(
            1 for item in self.control_items() for name in item if name.startswith("h:")
        )

    def waiting(self) -> int:
        """Waiter items in the control table (every queue)."""
        return sum(
            1 for item in self.control_items() if item["sk"]["S"].startswith("w#")
        )

    def visible(self) -> list[tuple[JobMessage, str]]:
        """The job messages the outbox has sent and a worker would receive now."""
        found: list[tuple[JobMessage, str]] = []
        while batch := self.stack.receive():
            for message in batch:
                self.receive_counts.append(
                    int(message["Attributes"]["ApproximateReceiveCount"])
                )
                found.append(
                    (
                        JobMessage.model_validate_json(message["Body"]),
                        message["ReceiptHandle"],
                    )
                )
        return found

    def delete(self, receipt_handle: str) -> None:
        self.stack.sqs.delete_message(
            QueueUrl=self.stack.queue_url, ReceiptHandle=receipt_handle
        )


def delivery(
    message: JobMessage, receipt_handle: str | None = None, lease_s: float = 60
) -> Delivery:
    return Delivery(
        message=message,
        receipt_handle=receipt_handle,
        request_id=f"req-{time.monotonic_ns()}",
        lease_until=utcnow() + timedelta(seconds=lease_s),
        deadline=time.monotonic() + WAIT_S,
    )


def message_of(job: Job) -> JobMessage:
    return JobMessage(job_id=job.id, owner=job.owner, job_type=job.type, run=job.run)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="flow") as executor:
        yield executor


# ------------------------------------------------------------------------ the limit holds
def test_a_limit_of_two_is_never_exceeded_and_nothing_is_held_at_the_end(
    moto_stack: MotoStack, pool: ThreadPoolExecutor
) -> None:
    # Given 10 jobs of ann and 3 of bob, limited to 2 running per owner
    flow = Flow(moto_stack, limit=2)
    anns = [flow.submit("ann") for _ in range(10)]
    bobs = [flow.submit("bob") for _ in range(3)]

    # When workers run every visible message at once, round after round (a parked job's
    # message is acknowledged; a woken one gets a new message from the outbox)
    for _ in range(ROUNDS):
        visible = flow.visible()
        if not visible:
            break
        futures: list[tuple[Future[RunOutcome], str]] = [
            (pool.submit(flow.service.run, delivery(message, handle)), handle)
            for message, handle in visible
        ]
        for future, handle in futures:
            assert future.result(WAIT_S * 3) is RunOutcome.DONE
            flow.delete(handle)

    # Then ann never had 3 jobs running at once (and had 2: the limit was met), bob's ran too
    assert flow.handler.peak["ann"] == 2
    assert 1 <= flow.handler.peak["bob"] <= 2
    jobs = [flow.get(job) for job in anns + bobs]
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * 13
    # each ran once, with one attempt: waiting used no attempt and no receive
    assert set(flow.handler.runs.values()) == {1} and len(flow.handler.runs) == 13
    assert {job.attempts for job in jobs} == {1}
    assert set(flow.receive_counts) == {1}
    assert (
        len(flow.receive_counts) > 13
    )  # some waited: parked, then woken with a new message
    # and nothing is held, nothing waits
    assert (flow.held(), flow.waiting()) == (0, 0)


# ------------------------------------------------------------------- no permit leaked
@dataclass
class Holding:
    """A holder running (held in its handler) and a waiter parked behind it."""

    flow: Flow
    holder: Job
    waiter: Job
    running: Future[RunOutcome]


def hold_and_park(
    moto_stack: MotoStack, pool: ThreadPoolExecutor, do: str, lease_s: float = 60
) -> Holding:
    flow = Flow(moto_stack, limit=1)
    holder, waiter = flow.submit("ann", do), flow.submit("ann", "run")
    flow.visible()  # their first messages, received (the tests deliver them by hand)
    flow.handler.hold = holder.id
    running = pool.submit(
        flow.service.run, delivery(message_of(holder), lease_s=lease_s)
    )
    assert flow.handler.entered.wait(WAIT_S)
    assert flow.service.run(delivery(message_of(waiter))) is RunOutcome.DONE
    parked = flow.get(waiter)
    assert parked.blocked_on is not None and parked.blocked_on.reason == "concurrency"
    # a listing (the index, then the items' summaries) says why it waits too
    listed = flow.service.list_jobs(
        "ann", JobFilter(status=JobStatus.QUEUED), 10, None
    ).items
    assert [(s.id, s.blocked_on) for s in listed] == [(waiter.id, parked.blocked_on)]
    # and GET /jobs/{id}'s and GET /limits's views count on the control table
    assert flow.service.flow is not None
    explained = flow.service.flow.explain(parked)
    assert explained is not None and explained.position == 0
    [view] = [v for v in flow.service.flow.limits("ann")[0] if v.name == "per-owner"]
    assert (view.key, view.held, view.waiting, view.limit) == ("ann", 1, 1, 1)
    assert (parked.status, parked.attempts, flow.held(), flow.waiting()) == (
        JobStatus.QUEUED,
        0,
        1,
        1,
    )
    return Holding(flow, holder, waiter, running)


def the_waiter_runs_and_nothing_is_left(holding: Holding) -> None:
    """The waiter was woken (a new message), runs, and nothing is held or waits."""
    flow, waiter = holding.flow, holding.waiter
    assert flow.get(waiter).blocked_on is None
    messages = [m for m, _ in flow.visible() if m.job_id == waiter.id]
    assert len(messages) == 1
    assert flow.service.run(delivery(messages[0])) is RunOutcome.DONE
    done = flow.get(waiter)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)
    assert (flow.held(), flow.waiting()) == (0, 0)


@pytest.mark.parametrize(
    ("do", "ends"), [("fail", JobStatus.FAILED), ("cancel", JobStatus.CANCELLED)]
)
def test_a_holder_that_fails_or_is_cancelled_gives_its_permit_back(
    moto_stack: MotoStack, pool: ThreadPoolExecutor, do: str, ends: JobStatus
) -> None:
    holding = hold_and_park(moto_stack, pool, do)
    if do == "cancel":
        holding.flow.service.cancel("ann", holding.holder.id)
    holding.flow.handler.release.set()
    assert holding.running.result(WAIT_S) is RunOutcome.DONE
    assert holding.flow.get(holding.holder).status is ends
    the_waiter_runs_and_nothing_is_left(holding)


def test_a_holder_whose_outcome_and_release_answers_are_lost_leaks_nothing(
    moto_stack: MotoStack, pool: ThreadPoolExecutor
) -> None:
    holding = hold_and_park(moto_stack, pool, "run")
    holder = holding.holder.id
    holding.flow.client.lose += [writes_job(holder, "succeeded"), releases(holder)]
    holding.flow.handler.release.set()
    assert holding.running.result(WAIT_S) is RunOutcome.DONE
    assert holding.flow.client.lose == []  # both faults fired
    assert holding.flow.get(holding.holder).status is JobStatus.SUCCEEDED
    the_waiter_runs_and_nothing_is_left(holding)


def test_a_holder_killed_then_dead_lettered_gives_its_permit_back(
    moto_stack: MotoStack, pool: ThreadPoolExecutor
) -> None:
    # Given the holder's worker dies as it records the outcome (its lease has ended)
    holding = hold_and_park(moto_stack, pool, "run", lease_s=0)
    holding.flow.client.kill.append(writes_job(holding.holder.id, "succeeded"))
    holding.flow.handler.release.set()
    with pytest.raises(InvocationKilled):
        holding.running.result(WAIT_S)
    assert holding.flow.held() == 1  # the dead worker's permit: its job still "running"

    # When SQS dead-letters its message
    holding.flow.service.dead_letter(message_of(holding.holder), 5)

    # Then the permit is given back and the waiter woken
    assert holding.flow.get(holding.holder).status is JobStatus.DEAD_LETTERED
    the_waiter_runs_and_nothing_is_left(holding)


def test_a_holder_killed_then_reclaimed_takes_its_permit_over_and_gives_it_back(
    moto_stack: MotoStack, pool: ThreadPoolExecutor
) -> None:
    holding = hold_and_park(moto_stack, pool, "run", lease_s=0)
    holding.flow.client.kill.append(writes_job(holding.holder.id, "succeeded"))
    holding.flow.handler.release.set()
    with pytest.raises(InvocationKilled):
        holding.running.result(WAIT_S)

    # When its message comes back (the lease ended): the job is reclaimed and runs again under
    # the same permit (taken over, not a second one), then gives it back
    holding.flow.handler.hold = None
    again = holding.flow.service.run(delivery(message_of(holding.holder)))
    assert again is RunOutcome.DONE
    reclaimed = holding.flow.get(holding.holder)
    assert (reclaimed.status, reclaimed.attempts) == (JobStatus.SUCCEEDED, 2)
    assert holding.flow.handler.peak["ann"] == 1
    the_waiter_runs_and_nothing_is_left(holding)


# ------------------------------------------------------------- lanes, groups, pauses
def test_every_message_is_grouped_by_its_owner_and_a_priority_takes_its_lane(
    moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the template's lanes configured as the template configures the functions
    urls = moto_stack.provisioned.queue_urls
    for lane, queue in (("HIGH", "HighJobsQueue"), ("LOW", "LowJobsQueue")):
        monkeypatch.setenv(f"JOBLINE_{lane}_QUEUE_URL", urls[queue])
    bootstrap.reset()
    flow = Flow(moto_stack, limit=1)

    # When owners submit at each priority (one owner's name needs escaping)
    submitted = {
        priority: flow.service.submit(
            owner,
            SubmitRequest(
                type="limited",
                payload={"owner": owner},
                priority=Priority(priority),
            ),
        ).job
        for owner, priority in (
            ("ann", "default"),
            ("team a/1", "high"),
            ("bob", "low"),
        )
    }

    # Then each message is on its priority's queue, its group the owner, escaped
    found = {
        queue: [
            (json.loads(m["Body"])["job_id"], m["Attributes"]["MessageGroupId"])
            for m in moto_stack.receive(urls[queue])
        ]
        for queue in ("JobsQueue", "HighJobsQueue", "LowJobsQueue")
    }
    assert found == {
        "JobsQueue": [(submitted["default"].id, "ann")],
        "HighJobsQueue": [(submitted["high"].id, "team%20a%2F1")],
        "LowJobsQueue": [(submitted["low"].id, "bob")],
    }


def test_a_pause_parks_and_a_resume_wakes_without_a_second_receive(
    moto_stack: MotoStack,
) -> None:
    flow = Flow(moto_stack, limit=1)
    assert flow.service.flow is not None
    flow.service.flow.pause("ann", False, "limited", everyone=False)
    job = flow.submit("ann")

    # When its message is delivered while the type is paused: parked, the message acknowledged
    [(message, handle)] = flow.visible()
    assert flow.service.run(delivery(message, handle)) is RunOutcome.DONE
    flow.delete(handle)
    parked = flow.get(job)
    assert parked.blocked_on is not None and parked.blocked_on.reason == "paused"
    assert (parked.attempts, flow.waiting()) == (0, 1)
    assert flow.visible() == []

    # When ann resumes: woken, a new message, received once, and the job runs
    assert flow.service.flow.resume("ann", False, "limited", everyone=False) == 1
    [(message, handle)] = flow.visible()
    assert flow.service.run(delivery(message, handle)) is RunOutcome.DONE
    done = flow.get(job)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)
    assert flow.receive_counts == [1, 1]
    assert (flow.held(), flow.waiting()) == (0, 0)


def test_three_deliveries_at_once_run_the_job_once_under_one_permit(
    moto_stack: MotoStack, pool: ThreadPoolExecutor
) -> None:
    flow = Flow(moto_stack, limit=1)
    job = flow.submit("ann")
    barrier = threading.Barrier(3)

    def deliver() -> RunOutcome:
        barrier.wait(WAIT_S)
        return flow.service.run(delivery(message_of(job)))

    outcomes = [f.result(WAIT_S) for f in [pool.submit(deliver) for _ in range(3)]]

    # (a delivery that finds the job running under another's live lease comes back later)
    assert RunOutcome.DONE in outcomes
    assert set(outcomes) <= {RunOutcome.DONE, RunOutcome.REDELIVER}
    assert flow.handler.runs[job.id] == 1 and flow.handler.peak["ann"] == 1
    done = flow.get(job)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)
    assert (flow.held(), flow.waiting()) == (0, 0)


# -------------------------------------------------------------------------- rate limits
def rated_service(stack: MotoStack, *limits: RateLimit) -> JobService:
    client = Faulty(stack.dynamodb)
    rated = JobType(
        name="rated",
        description="Starts under rate limits.",
        input_model=Input,
        handler=lambda payload, context: {"ran": True},
        rate_limits=limits,
    )
    control = stack.provisioned.tables["ControlTable"]
    return build_service(
        repository=DynamoJobRepository(client, stack.table),  # type: ignore[arg-type]
        registry=JobTypeRegistry([rated]),
        flow_store=DynamoFlowStore(client, control),  # type: ignore[arg-type]
    )


def test_submits_at_once_each_reserve_their_own_start_in_the_bucket(
    moto_stack: MotoStack, pool: ThreadPoolExecutor
) -> None:
    # Given one start per 10 s per owner, delayed
    service = rated_service(
        moto_stack, RateLimit(name="calls", limit=1, period_s=10, on_limit="delay")
    )
    request = SubmitRequest(type="rated", payload={"owner": "ann"})
    barrier = threading.Barrier(4)

    def submit() -> Job:
        barrier.wait(WAIT_S)
        return service.submit("ann", request).job

    # When four submits race for the bucket
    jobs = [f.result(WAIT_S) for f in [pool.submit(submit) for _ in range(4)]]

    # Then each got a start of its own, 10 s apart (the bucket's version decides the races)
    starts = sorted(job.run_after for job in jobs if job.run_after is not None)
    assert len(starts) == 4
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert all(gap >= 10 for gap in gaps), gaps


def test_a_reject_limit_refuses_until_its_retry_after(moto_stack: MotoStack) -> None:
    service = rated_service(
        moto_stack, RateLimit(name="calls", limit=1, period_s=3600, on_limit="reject")
    )
    request = SubmitRequest(type="rated", payload={"owner": "ann"})
    first = service.submit("ann", request, "key-1")
    assert first.created
    with pytest.raises(RateLimited) as refused:
        service.submit("ann", request, "key-2")
    assert 3590 <= refused.value.retry_after_s <= 3600
    # the stored submit replays without taking a start; another owner has a bucket of its own
    assert service.submit("ann", request, "key-1").created is False
    assert service.submit("bob", SubmitRequest(type="rated", payload={"owner": "bob"}))


# ------------------------------------------------------------------- leaked permits
def leak_a_permit(flow: Flow) -> Job:
    """A job that succeeded, its worker killed before its release: its permit is left held."""
    leaked = flow.submit("ann")
    flow.client.kill.append(releases(leaked.id))
    with pytest.raises(InvocationKilled):
        flow.service.run(delivery(message_of(leaked)))
    assert flow.get(leaked).status is JobStatus.SUCCEEDED
    assert flow.held() == 1
    return leaked


def test_the_next_admission_takes_back_a_permit_whose_holder_ended(
    moto_stack: MotoStack,
) -> None:
    flow = Flow(moto_stack, limit=1)
    leak_a_permit(flow)
    # When the next job of the key is claimed, the ended holder's permit is removed for it
    job = flow.submit("ann")
    assert flow.service.run(delivery(message_of(job))) is RunOutcome.DONE
    assert flow.get(job).status is JobStatus.SUCCEEDED
    assert (flow.held(), flow.waiting()) == (0, 0)


def test_the_sweep_takes_back_a_permit_whose_holder_ended_with_no_one_waiting(
    moto_stack: MotoStack,
) -> None:
    flow = Flow(moto_stack, limit=1)
    leak_a_permit(flow)
    assert flow.service.admission is not None
    flow.service.admission.sweep()
    assert (flow.held(), flow.waiting()) == (0, 0)
