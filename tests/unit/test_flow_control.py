"""Flow control with in-memory fakes (issue 18): declarations and keys, the worker's admission
(acquire, park, release, wake, sweep, every `on_limit` strategy), pauses, rate limits, priority
lanes, and a type without limits paying nothing."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from jobline.errors import (
    ConditionFailed,
    InvalidJobTypeDeclaration,
    InvalidPayload,
    RateLimited,
    StorageUnavailable,
)
from jobline.flow import (
    BlockedOn,
    Concurrency,
    FlowKey,
    Permits,
    Priority,
    RateBucket,
    RateLimit,
    escape,
    lane_of,
    message_group,
    pause_scope,
    render_key,
    waiter_rank,
)
from jobline.models import Job, JobStatus, SubmitRequest
from jobline.registry import JobContext
from jobline.service import JobService, RunOutcome

from tests.support.builders import ANN, BOB, delivery_of
from tests.support.fakes import (
    START,
    AnyInput,
    FakeClock,
    InMemoryFlowStore,
    InMemoryJobQueue,
    InMemoryJobRepository,
    job_type_of,
)
from tests.support.services import build_fake_service, build_registry

Nested = Callable[[AnyInput, JobContext], Any]


class Stack:
    """A fake deployment with one limited type whose handler can run other deliveries while it
    holds its permit (overlap, synchronously)."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        concurrency: tuple[Concurrency, ...] = (),
        rate_limits: tuple[RateLimit, ...] = (),
        owner_concurrency: int | None = None,
        store: InMemoryFlowStore | None = None,
    ) -> None:
        self.during: list[Callable[[], object]] = []
        self.runs: list[str] = []

        def handler(payload: AnyInput, context: JobContext) -> Any:
            self.runs.append(context.job_id)
            while self.during:
                self.during.pop(0)()
            return {"ok": True}

        limited = replace(
            job_type_of("limited", handler),
            concurrency=concurrency,
            rate_limits=rate_limits,
        )
        self.store = store or InMemoryFlowStore()
        service, repo, queue = build_fake_service(
            build_registry([limited, job_type_of("free", handler)]),
            clock=clock,
            flow_store=self.store,
            owner_concurrency=owner_concurrency,
        )
        self.service: JobService = service
        self.repo: InMemoryJobRepository = repo
        self.queue: InMemoryJobQueue = queue

    def submit(self, owner: str = ANN, type: str = "limited", **fields: Any) -> Job:
        request = SubmitRequest(type=type, payload=fields.pop("payload", {}), **fields)
        return self.service.submit(owner, request).job

    def run(self, job: Job) -> RunOutcome:
        return self.service.run(delivery_of(job))

    def get(self, job: Job) -> Job:
        stored = self.repo.get(job.id)
        assert stored is not None
        return stored

    def messages_for(self, job: Job) -> int:
        return sum(1 for sent in self.queue.sent if sent.message.job_id == job.id)


ONE = (Concurrency(name="one", key="{owner}", limit=1),)


# ------------------------------------------------------------------------ declarations
def test_key_templates_render_each_part_escaped() -> None:
    key = render_key(
        "{owner}:{type}:{payload.account.id}:{key}",
        name="crm",
        owner="a:b#c",
        job_type="crm.sync",
        payload={"account": {"id": 7}},
        concurrency_key="x/y",
    )
    assert key == "a%3Ab%23c:crm.sync:7:x%2Fy"
    # two owners whose text would collide through a separator never share a key
    assert render_key(
        "{owner}:{key}",
        name="n",
        owner="a:b",
        job_type="t",
        payload={},
        concurrency_key="c",
    ) != render_key(
        "{owner}:{key}",
        name="n",
        owner="a",
        job_type="t",
        payload={},
        concurrency_key="b:c",
    )


def test_a_key_on_a_missing_payload_field_is_an_invalid_payload() -> None:
    with pytest.raises(InvalidPayload) as refused:
        render_key(
            "{payload.account_id}",
            name="crm",
            owner="ann",
            job_type="t",
            payload={},
            concurrency_key=None,
        )
    assert refused.value.errors[0]["loc"] == ["payload", "account_id"]


@pytest.mark.parametrize(
    "declare",
    [
        lambda: Concurrency(name="x", key="{nope}"),
        lambda: Concurrency(name="x", limit=0),
        lambda: Concurrency(name="has space"),
        lambda: Concurrency(name="x", on_limit="drop"),  # type: ignore[arg-type]
        lambda: RateLimit(name="x", period_s=0),
        lambda: RateLimit(name="x", on_limit="queue"),  # type: ignore[arg-type]
    ],
)
def test_refused_declarations(declare: Callable[[], object]) -> None:
    with pytest.raises(InvalidJobTypeDeclaration):
        declare()


def test_a_type_declares_each_limit_name_once() -> None:
    with pytest.raises(InvalidJobTypeDeclaration):
        replace(
            job_type_of("t", lambda p, c: None),
            concurrency=(Concurrency(name="a"),),
            rate_limits=(RateLimit(name="a"),),
        )


def test_message_groups_are_the_escaped_owner_within_sqs_bounds() -> None:
    assert message_group("ann") == "ann"
    assert message_group("a b") == "a%20b"
    long = message_group("x" * 300)
    assert len(long) <= 128 and long != message_group("x" * 299)


def test_priority_lanes_split_the_default_lane_only() -> None:
    assert lane_of("default", Priority.HIGH) == "high"
    assert lane_of("default", Priority.LOW) == "low"
    assert lane_of("default", Priority.DEFAULT) == "default"
    assert lane_of("long", Priority.HIGH) == "long"


def test_waiters_order_by_priority_then_head_start_then_arrival() -> None:
    later = START + timedelta(seconds=30)
    ranks = [
        waiter_rank("low", 600, START),
        waiter_rank(None, 0, START),
        waiter_rank(None, 60, later),
        waiter_rank("high", 0, later),
    ]
    assert sorted(ranks) == [ranks[3], ranks[2], ranks[1], ranks[0]]


# --------------------------------------------------------------------- paying nothing
def test_a_type_without_limits_reads_and_writes_nothing_of_flow_control(
    clock: FakeClock,
) -> None:
    stack = Stack(clock)
    stack.service.admission.refresh_s = 3600  # type: ignore[union-attr]
    jobs = [stack.submit(type="free") for _ in range(5)]
    for job in jobs:
        assert stack.run(job) is RunOutcome.DONE
    assert all(stack.get(job).status is JobStatus.SUCCEEDED for job in jobs)
    assert stack.store.writes == 0
    assert stack.store.reads <= 1  # the pauses, once per environment per refresh
    assert all(not stack.get(job).flow_keys for job in jobs)


# ------------------------------------------------------------------------ concurrency
def test_at_the_limit_a_job_is_parked_then_woken_when_the_permit_frees(
    clock: FakeClock,
) -> None:
    stack = Stack(clock, concurrency=ONE)
    first, second = stack.submit(), stack.submit()
    parked: list[RunOutcome] = []
    stack.during.append(lambda: parked.append(stack.run(second)))

    assert stack.run(first) is RunOutcome.DONE

    # the second met the limit while the first ran: parked, its message acknowledged, its
    # attempt given back, no history entry
    assert parked == [RunOutcome.DONE]
    assert stack.runs == [first.id]
    woken = stack.get(second)
    assert (woken.status, woken.attempts, woken.history) == (JobStatus.QUEUED, 0, ())
    # and the first's release woke it: a new message, sent by the outbox
    assert woken.blocked_on is None and woken.dispatch is not None
    assert stack.messages_for(second) == 2
    assert stack.run(second) is RunOutcome.DONE
    assert stack.get(second).status is JobStatus.SUCCEEDED
    assert (stack.store.held(), stack.store.waiting()) == (0, 0)


def test_a_claim_recovered_after_another_write_is_still_admitted(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a type paused for ann, and her job's claim applied but its answer lost, while
    # another write (a cancel request, the outbox's stamp) moved the row's updated_at before
    # botocore's retry met the claim as its own
    stack = Stack(clock)
    flow = stack.service.flow
    assert flow is not None
    flow.pause(ANN, False, "free", everyone=False)
    job = stack.submit(type="free")
    update = stack.repo.update

    def claim_answer_lost(job_id: str, *args: Any, **kwargs: Any) -> Job:
        applied = update(job_id, *args, **kwargs)
        monkeypatch.setattr(stack.repo, "update", update)
        moved = applied.model_copy(
            update={"updated_at": applied.updated_at + timedelta(seconds=1)}
        )
        stack.repo.put(moved)
        raise ConditionFailed(moved)

    monkeypatch.setattr(stack.repo, "update", claim_answer_lost)

    # When it is delivered
    assert stack.run(job) is RunOutcome.DONE

    # Then the recovered claim is a new attempt, admitted as one: parked on the pause, never
    # run (a claim is "resumed" only when it took over a continuing attempt, never because a
    # timestamp moved)
    assert stack.runs == []
    parked = stack.get(job)
    assert parked.blocked_on is not None and parked.blocked_on.reason == "paused"
    assert (parked.status, parked.attempts) == (JobStatus.QUEUED, 0)


def test_a_parked_job_says_why_and_where_it_waits(clock: FakeClock) -> None:
    stack = Stack(clock, concurrency=ONE)
    first, second, third = stack.submit(), stack.submit(), stack.submit()
    seen: list[BlockedOn | None] = []

    def park_two() -> None:
        stack.run(second)
        stack.run(third)
        assert stack.service.flow is not None
        seen.append(stack.service.flow.explain(stack.get(second)))
        seen.append(stack.service.flow.explain(stack.get(third)))

    stack.during.append(park_two)
    stack.run(first)
    assert [(b.reason, b.key, b.position) for b in seen if b] == [
        ("concurrency", "one#ann", 0),
        ("concurrency", "one#ann", 1),
    ]


def test_another_owner_runs_meanwhile(clock: FakeClock) -> None:
    stack = Stack(clock, concurrency=ONE)
    ann, bob = stack.submit(ANN), stack.submit(BOB)
    outcome: list[RunOutcome] = []
    stack.during.append(lambda: outcome.append(stack.run(bob)))
    stack.run(ann)
    assert stack.runs == [ann.id, bob.id]
    assert stack.get(bob).status is JobStatus.SUCCEEDED


def test_skip_ends_the_new_job_cancelled_with_a_reason(clock: FakeClock) -> None:
    stack = Stack(
        clock, concurrency=(Concurrency(name="one", limit=1, on_limit="skip"),)
    )
    first, second = stack.submit(), stack.submit()
    stack.during.append(lambda: stack.run(second))
    stack.run(first)
    skipped = stack.get(second)
    assert skipped.status is JobStatus.CANCELLED
    assert skipped.error is not None and skipped.error.type == "ConcurrencyLimit"
    assert (skipped.attempts, skipped.history) == (0, ())
    assert (stack.store.held(), stack.store.waiting()) == (0, 0)


def test_cancel_running_asks_the_holder_to_cancel_and_the_new_one_waits(
    clock: FakeClock,
) -> None:
    stack = Stack(
        clock,
        concurrency=(Concurrency(name="one", limit=1, on_limit="cancel_running"),),
    )
    first, second = stack.submit(), stack.submit()
    states: list[Job] = []

    def meanwhile() -> None:
        stack.run(second)
        states.append(stack.get(first))

    stack.during.append(meanwhile)
    stack.run(first)
    assert states[0].cancel_requested_at is not None
    assert stack.get(second).status is JobStatus.QUEUED
    assert stack.run(second) is RunOutcome.DONE
    assert stack.get(second).status is JobStatus.SUCCEEDED


def test_replace_queued_cancels_the_waiting_one_and_the_newest_waits(
    clock: FakeClock,
) -> None:
    stack = Stack(
        clock,
        concurrency=(Concurrency(name="one", limit=1, on_limit="replace_queued"),),
    )
    first, second, third = stack.submit(), stack.submit(), stack.submit()
    states: list[Job] = []

    def meanwhile() -> None:
        stack.run(second)
        stack.run(third)
        states.extend([stack.get(second), stack.get(third)])

    stack.during.append(meanwhile)
    stack.run(first)
    replaced, newest = states
    assert replaced.status is JobStatus.CANCELLED
    assert replaced.error is not None and replaced.error.type == "ConcurrencyReplaced"
    assert (replaced.attempts, replaced.history) == (0, ())
    assert newest.status is JobStatus.QUEUED and newest.blocked_on is not None
    assert stack.run(third) is RunOutcome.DONE
    assert (stack.store.held(), stack.store.waiting()) == (0, 0)


def test_priority_s_orders_the_waiters(clock: FakeClock) -> None:
    stack = Stack(clock, concurrency=ONE)
    holder = stack.submit()
    plain = stack.submit()
    ahead = stack.submit(priority_s=60)

    def park_both() -> None:
        stack.run(plain)
        stack.run(ahead)

    stack.during.append(park_both)
    stack.run(holder)
    # the release woke the one with the head start, although it came later
    assert stack.get(ahead).blocked_on is None
    assert stack.get(plain).blocked_on is not None


def test_a_limit_of_two_never_runs_three_and_ends_with_nothing_held(
    clock: FakeClock,
) -> None:
    stack = Stack(clock, concurrency=(Concurrency(name="two", limit=2),))
    jobs = [stack.submit() for _ in range(10)]
    rng = random.Random(5)
    running: set[str] = set()
    peak = 0
    pending = list(jobs)

    # Deliveries in random order, nested: each running job may start the next deliveries
    def deliver() -> None:
        nonlocal peak
        while pending:
            job = pending.pop(rng.randrange(len(pending)))
            if stack.get(job).status is not JobStatus.QUEUED:
                continue
            running.add(job.id)
            stack.run(job)
            running.discard(job.id)

    stack.during.append(deliver)
    for _ in range(20):
        for job in jobs:
            if (
                stack.get(job).status is JobStatus.QUEUED
                and stack.get(job).blocked_on is None
            ):
                stack.during.append(deliver)
                pending.append(job)
                stack.run(job)
        peak = max(peak, stack.store.max_held.get("two#ann", 0))
    assert all(stack.get(job).status is JobStatus.SUCCEEDED for job in jobs)
    assert stack.store.max_held["two#ann"] == 2
    assert (stack.store.held(), stack.store.waiting()) == (0, 0)
    # no attempt was used by waiting
    assert all(stack.get(job).attempts == 1 for job in jobs)


# ------------------------------------------------------------------------------ faults
def test_a_lost_acquire_answer_meets_its_own_permit(clock: FakeClock) -> None:
    stack = Stack(clock, concurrency=ONE)
    job = stack.submit()
    stack.store.lose_responses["acquire"] = 1
    assert stack.run(job) is RunOutcome.DONE
    assert stack.get(job).status is JobStatus.SUCCEEDED
    assert stack.store.held() == 0


def test_a_lost_release_answer_is_still_released(clock: FakeClock) -> None:
    stack = Stack(clock, concurrency=ONE)
    first, second = stack.submit(), stack.submit()
    stack.store.lose_responses["release"] = 1
    stack.run(first)
    assert stack.store.held() == 0
    assert stack.run(second) is RunOutcome.DONE


def test_a_permit_of_a_job_that_no_longer_runs_is_taken_back(clock: FakeClock) -> None:
    stack = Stack(clock, concurrency=ONE)
    dead, next_one = stack.submit(), stack.submit()
    # a worker took the permit and died; the job was then dead-lettered without its release
    key = FlowKey(name="one", key="ann")
    assert stack.store.acquire(key, 1, dead.id, "lease-dead", START) is None
    stack.repo.put(
        stack.get(dead).model_copy(update={"status": JobStatus.DEAD_LETTERED})
    )
    assert stack.run(next_one) is RunOutcome.DONE
    assert stack.get(next_one).status is JobStatus.SUCCEEDED
    assert stack.store.held() == 0


def test_a_permit_of_a_running_job_is_never_taken(clock: FakeClock) -> None:
    stack = Stack(clock, concurrency=ONE)
    alive, other = stack.submit(), stack.submit()
    key = FlowKey(name="one", key="ann")
    stack.store.acquire(key, 1, alive.id, "lease-alive", START)
    stack.repo.put(stack.get(alive).model_copy(update={"status": JobStatus.RUNNING}))
    stack.run(other)
    assert stack.get(other).blocked_on is not None
    assert stack.store.held(key) == 1


def test_the_sweep_wakes_a_waiter_whose_wake_was_lost(clock: FakeClock) -> None:
    stack = Stack(clock, concurrency=ONE)
    holder, waiter = stack.submit(), stack.submit()
    key = FlowKey(name="one", key="ann")
    stack.store.acquire(key, 1, holder.id, "lease-h", START)
    stack.repo.put(stack.get(holder).model_copy(update={"status": JobStatus.RUNNING}))
    stack.run(waiter)
    assert stack.get(waiter).blocked_on is not None
    # the holder's release lands but its wake is lost (the worker died in between)
    stack.store.release(key, holder.id, "lease-h")
    assert stack.service.admission is not None
    assert stack.service.admission.sweep() == 1
    assert stack.get(waiter).blocked_on is None
    assert stack.run(waiter) is RunOutcome.DONE
    assert (stack.store.held(), stack.store.waiting()) == (0, 0)


def test_a_duplicate_message_of_a_parked_job_is_acknowledged_without_a_claim(
    clock: FakeClock,
) -> None:
    stack = Stack(clock, concurrency=ONE)
    holder, waiter = stack.submit(), stack.submit()
    outcomes: list[RunOutcome] = []

    def twice() -> None:
        outcomes.append(stack.run(waiter))
        outcomes.append(stack.run(waiter))  # a duplicate delivery of its old message
        outcomes.append(stack.run(waiter))

    stack.during.append(twice)
    stack.run(holder)
    assert outcomes == [RunOutcome.DONE] * 3
    assert stack.get(waiter).attempts == 0


# ------------------------------------------------------------------------------ pauses
def test_pause_parks_and_resume_wakes(clock: FakeClock) -> None:
    stack = Stack(clock)
    flow = stack.service.flow
    assert flow is not None
    flow.pause(ANN, False, "free", everyone=False)
    job, bobs = stack.submit(type="free"), stack.submit(BOB, type="free")
    assert stack.run(job) is RunOutcome.DONE
    assert stack.run(bobs) is RunOutcome.DONE  # another owner's jobs run
    parked = stack.get(job)
    assert parked.blocked_on is not None and parked.blocked_on.reason == "paused"
    assert (parked.attempts, stack.messages_for(job)) == (0, 1)
    assert flow.resume(ANN, False, "free", everyone=False) == 1
    assert stack.messages_for(job) == 2
    assert stack.run(job) is RunOutcome.DONE
    assert stack.get(job).status is JobStatus.SUCCEEDED


def test_only_an_admin_pauses_everyone(clock: FakeClock) -> None:
    from jobline.errors import Forbidden

    stack = Stack(clock)
    assert stack.service.flow is not None
    with pytest.raises(Forbidden):
        stack.service.flow.pause(ANN, False, "free", everyone=True)
    stack.service.flow.pause("root", True, "free", everyone=True)
    job = stack.submit(BOB, type="free")
    stack.run(job)
    assert stack.get(job).blocked_on is not None


# ------------------------------------------------------------------------ rate limits
def test_a_delay_rate_limit_reserves_each_jobs_start_once(clock: FakeClock) -> None:
    clock.step = timedelta()
    limit = RateLimit(name="api", limit=1, period_s=10)
    stack = Stack(clock, rate_limits=(limit,))
    starts = [stack.submit().run_after for _ in range(3)]
    assert starts == [
        START,
        START + timedelta(seconds=10),
        START + timedelta(seconds=20),
    ]
    # the message is delayed until then: the job waits once
    delays = [sent.delay_seconds for sent in stack.queue.sent]
    assert delays == [0, 10, 20]


def test_a_reject_rate_limit_refuses_then_the_same_key_succeeds_later(
    clock: FakeClock,
) -> None:
    clock.step = timedelta()
    limit = RateLimit(name="api", limit=1, period_s=30, on_limit="reject")
    stack = Stack(clock, rate_limits=(limit,))
    request = SubmitRequest(type="limited", payload={})
    stack.service.submit(ANN, request, "key-1")
    with pytest.raises(RateLimited) as refused:
        stack.service.submit(ANN, request, "key-2")
    assert refused.value.retry_after_s == 30
    assert len(stack.repo.jobs) == 1
    # a replay of the stored submit is not limited (it takes no start)
    assert stack.service.submit(ANN, request, "key-1").created is False
    clock.advance(timedelta(seconds=refused.value.retry_after_s))
    assert stack.service.submit(ANN, request, "key-2").created is True


@pytest.mark.parametrize("skew_s", [0.0, 0.4, 1.5, 7.0])
def test_clock_skew_adds_at_most_ceil_two_skews_over_the_interval(
    skew_s: float,
) -> None:
    # Two submitters whose clocks differ by `skew_s` share one bucket; each job then starts on
    # a worker whose clock is off by up to `skew_s` either way. In any window of the period,
    # the starts (in true time) exceed limit + burst - 1 by at most ceil(2 skew / interval).
    limit = RateLimit(name="api", limit=5, period_s=10, burst=2)
    store = InMemoryFlowStore()
    rng = random.Random(int(skew_s * 10))
    starts: list[float] = []
    true_now = 0.0
    for _ in range(200):
        true_now += rng.uniform(0, 1.5)
        writer = rng.choice([0.0, skew_s])
        now = START + timedelta(seconds=true_now + writer)
        tat, version = store.rate_bucket("api", "ann")
        start, after = RateBucket(tat).reserve(limit, now)
        assert store.put_rate_bucket("api", "ann", after, version, 0)
        worker = rng.choice([-skew_s, 0.0, skew_s]) / 2
        starts.append((start - START).total_seconds() - worker)
    starts.sort()
    interval = limit.period_s / limit.limit
    bound = limit.limit + limit.burst - 1 + math.ceil(2 * skew_s / interval)
    most = max(
        sum(1 for s in starts if first <= s < first + limit.period_s)
        for first in starts
    )
    assert most <= bound


def test_the_per_owner_cap_holds_across_types(clock: FakeClock) -> None:
    stack = Stack(clock, owner_concurrency=1)
    first, second = stack.submit(type="free"), stack.submit(type="limited")
    stack.during.append(lambda: stack.run(second))
    stack.run(first)
    assert stack.runs == [first.id]
    assert stack.get(second).blocked_on is None  # woken by the first's release
    assert stack.run(second) is RunOutcome.DONE


def test_the_owner_cap_keys_on_the_identity_not_on_a_client_key(
    clock: FakeClock,
) -> None:
    stack = Stack(clock, owner_concurrency=1)
    job = stack.submit(type="free", concurrency_key="spread-me")
    assert [key.key for key in stack.get(job).flow_keys] == [escape(ANN)]


def test_dry_run_writes_nothing_and_answers_the_limits(clock: FakeClock) -> None:
    clock.step = timedelta()
    stack = Stack(
        clock,
        concurrency=ONE,
        rate_limits=(RateLimit(name="api", limit=1, period_s=60),),
    )
    assert stack.service.flow is not None
    stack.submit()
    writes, jobs = stack.store.writes, len(stack.repo.jobs)
    answer = stack.service.flow.dry_run(
        ANN, SubmitRequest(type="limited", priority=Priority.HIGH)
    )
    assert (stack.store.writes, len(stack.repo.jobs)) == (writes, jobs)
    assert answer.lane == "high"
    assert [(k.name, k.held, k.limit) for k in answer.keys] == [("one", 0, 1)]
    assert answer.wait_reasons == ["rate_limit"]
    assert answer.estimated_start == START + timedelta(seconds=60)
    assert answer.estimated_cost_usd > 0


def test_a_high_priority_job_is_sent_on_its_lane(clock: FakeClock) -> None:
    stack = Stack(clock)
    job = stack.submit(type="free", priority=Priority.HIGH)
    assert [sent.lane for sent in stack.queue.sent] == ["high"]
    assert stack.get(job).priority is Priority.HIGH
    # kept across retries
    assert stack.get(job).model_dump()["priority"] == "high"


def test_limit_overrides_take_effect_at_the_next_admission(clock: FakeClock) -> None:
    stack = Stack(clock, concurrency=ONE)
    flow = stack.service.flow
    assert flow is not None
    flow.set_limit(True, "one", 2)
    first, second = stack.submit(), stack.submit()
    stack.during.append(lambda: stack.run(second))
    stack.run(first)
    assert stack.runs == [first.id, second.id]


# --------------------------------------------------------- the control table unavailable
def test_an_unavailable_control_table_undoes_the_claim_and_uses_no_attempt(
    clock: FakeClock,
) -> None:
    stack = Stack(clock, concurrency=ONE)
    job = stack.submit()
    stack.store.down = True

    # When a worker claims the job while the control table does not answer
    assert stack.run(job) is RunOutcome.REDELIVER

    # Then the claim is undone: queued, no attempt used, nothing ran, the message comes back soon
    undone = stack.get(job)
    assert (undone.status, undone.attempts, undone.lease_id) == (
        JobStatus.QUEUED,
        0,
        None,
    )
    assert (undone.history, undone.blocked_on, stack.runs) == ((), None, [])
    assert stack.queue.visibility == [("handle-1", 5)]
    # and once the table answers again, the message that came back runs it
    stack.store.down = False
    assert stack.run(job) is RunOutcome.DONE
    assert (stack.get(job).status, stack.get(job).attempts) == (JobStatus.SUCCEEDED, 1)
    assert (stack.store.held(), stack.store.waiting()) == (0, 0)


class SecondKeyDown(InMemoryFlowStore):
    """A control table whose partition of the key `second` does not answer."""

    def acquire(
        self, key: FlowKey, limit: int, job_id: str, lease_id: str, now: datetime
    ) -> Permits | None:
        if key.name == "second":
            raise StorageUnavailable("acquire: throttled")
        return super().acquire(key, limit, job_id, lease_id, now)


def test_the_keys_taken_before_the_table_failed_are_given_back(
    clock: FakeClock,
) -> None:
    stack = Stack(
        clock,
        concurrency=(*ONE, Concurrency(name="second", limit=1)),
        store=SecondKeyDown(),
    )
    job = stack.submit()
    assert stack.run(job) is RunOutcome.REDELIVER
    assert stack.store.held() == 0
    assert (stack.get(job).status, stack.get(job).attempts) == (JobStatus.QUEUED, 0)


def test_a_type_without_limits_runs_while_the_control_table_is_down(
    clock: FakeClock,
) -> None:
    stack = Stack(clock)
    stack.store.down = True
    job = stack.submit(type="free")
    assert stack.run(job) is RunOutcome.DONE
    assert stack.get(job).status is JobStatus.SUCCEEDED


def test_an_ingest_submission_a_reject_rate_limit_refuses_is_kept_rejected(
    clock: FakeClock,
) -> None:
    clock.step = timedelta()
    limit = RateLimit(name="api", limit=1, period_s=30, on_limit="reject")
    stack = Stack(clock, rate_limits=(limit,))
    submission = {"type": "limited", "payload": {}, "owner": ANN}

    first = stack.service.ingest(submission, message_id="m-1", default_owner="ingest")
    second = stack.service.ingest(submission, message_id="m-2", default_owner="ingest")

    assert first.job.status is JobStatus.QUEUED
    rejected = second.job
    assert rejected.status is JobStatus.REJECTED
    assert rejected.error is not None and rejected.error.type == "rate_limited"
    assert "api" in rejected.error.message
    assert [sent.message.job_id for sent in stack.queue.sent] == [first.job.id]


def test_the_sweep_gives_back_a_permit_whose_release_was_lost_with_no_one_waiting(
    clock: FakeClock,
) -> None:
    # Given a job that succeeded, its worker killed before its release: nobody waits for the key
    stack = Stack(clock, concurrency=ONE)
    ended = stack.submit()
    key = FlowKey(name="one", key="ann")
    stack.store.acquire(key, 1, ended.id, "lease-gone", START)
    stack.repo.put(stack.get(ended).model_copy(update={"status": JobStatus.SUCCEEDED}))
    assert stack.store.held() == 1
    # When the sweep runs, the permit is given back (its holder does not run)
    assert stack.service.admission is not None
    stack.service.admission.sweep()
    assert (stack.store.held(), stack.store.waiting()) == (0, 0)


def test_a_job_parked_on_a_pause_another_environment_ended_is_woken_at_once(
    clock: FakeClock,
) -> None:
    # Given a worker whose settings still show a pause the API (elsewhere) has just ended
    stack = Stack(clock)
    admission, flow = stack.service.admission, stack.service.flow
    assert admission is not None and flow is not None
    admission.refresh_s = 3600
    flow.pause(ANN, False, "free", everyone=False)
    stack.store.set_pause(pause_scope("free", ANN), None)  # the resume, elsewhere
    job = stack.submit(type="free")

    # When the worker claims the job: parked on its stale view, then looked at again
    assert stack.run(job) is RunOutcome.DONE

    # Then it is woken at once (a new message), and runs
    woken = stack.get(job)
    assert (woken.status, woken.blocked_on, woken.attempts) == (
        JobStatus.QUEUED,
        None,
        0,
    )
    assert stack.messages_for(job) == 2
    assert stack.run(job) is RunOutcome.DONE
    assert stack.get(job).status is JobStatus.SUCCEEDED
    assert stack.store.waiting() == 0
