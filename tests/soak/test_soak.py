"""The soak: a few hundred mixed jobs through the whole local stack under AWS's own failure modes,
all at once, then an invariant table read from the table, the queues, the stream and what the
callers were answered. Seeded (`JOBLINE_SOAK_SEED`, printed); about three minutes on 2 cores
(the drain waits while jobs still move).

Injected on the functions' DynamoDB and SQS clients (`tests/faults.py`): throttles, lost responses
(applied, then a 500 or a read timeout, which botocore retries), latency, outage windows, and
environments killed before and after a request (the API mid-request, a worker mid-batch, the
outbox mid-send). Also: worker invocations with little time left, duplicate and concurrent
deliveries of job messages, late redeliveries of finished jobs' messages, a flaky HTTP server.

moto evaluates a condition and applies a write in separate Python steps, so concurrent
conditional writes could both win under a threaded moto server: the stack's server serializes
DynamoDB requests (`jobline_local.endpoint.SerializedMotoServer`), so what the soak finds is
Jobline's, not moto's.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from jobline import bootstrap
from jobline.aws.items import item_to_job
from jobline.models import Job, JobStatus
from jobline_local import stack as local_stack_module
from jobline_local.poller import InvocationKilled, import_handler
from jobline_local.schedule import SchedulePoller
from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack

from tests.soak.harness import (
    SLOT_LIMIT,
    SOAK_SETTINGS,
    SWEEP_S,
    Api,
    Images,
    RunLog,
    ShortInvocations,
    caller,
    duplicator,
    flaky_server,
    scaled_template,
)
from tests.support.faults import FaultInjector, Rates
from tests.support.jobfields import FINAL_STATUSES

pytestmark = pytest.mark.soak

SEED = int(os.environ.get("JOBLINE_SOAK_SEED", "20261201"))
CALLERS = 8
OPS_PER_CALLER = 70
LOAD_S = 40.0
"""About how long the callers take: the outage windows are placed in it."""
STALL_S = 30.0
"""A drain ends when no job has changed for this long: more than a visibility timeout
(harness.VISIBILITY_S) plus the longest backoff, so a message that is still coming back is
waited for."""
DRAIN_MAX_S = 300.0
FINAL = {JobStatus(status) for status in FINAL_STATUSES}
STEPS = {
    (JobStatus.QUEUED, JobStatus.RUNNING),
    (JobStatus.QUEUED, JobStatus.CANCELLED),
    (JobStatus.QUEUED, JobStatus.FAILED),
    (JobStatus.QUEUED, JobStatus.DEAD_LETTERED),
    (JobStatus.RUNNING, JobStatus.RUNNING),
    (JobStatus.RUNNING, JobStatus.QUEUED),
    (JobStatus.RUNNING, JobStatus.SUCCEEDED),
    (JobStatus.RUNNING, JobStatus.FAILED),
    (JobStatus.RUNNING, JobStatus.CANCELLED),
    (JobStatus.RUNNING, JobStatus.DEAD_LETTERED),
    (JobStatus.FAILED, JobStatus.QUEUED),
    (JobStatus.CANCELLED, JobStatus.QUEUED),
    (JobStatus.DEAD_LETTERED, JobStatus.QUEUED),
}
"""Every arrow of jobline.lifecycle's diagram, as statuses (a write may also keep the status)."""


@pytest.fixture
def soak_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalStack, Any]]:
    runs = RunLog()
    images = Images()
    shorts = ShortInvocations(random.Random(SEED + 1), share=0.1)
    for name, value in SOAK_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(bootstrap, "default_registry", runs.registry)

    def instrumented(spec: str) -> Any:
        handler = import_handler(spec)
        if spec.startswith("jobline_outbox.handler"):
            return images.tap(handler)
        if spec.startswith("jobline_worker."):
            return shorts.wrap(handler)
        return handler

    monkeypatch.setattr(local_stack_module, "import_handler", instrumented)
    settings = LocalSettings(
        api_port=0,
        moto_port=0,
        prefix=f"soak-{uuid.uuid4().hex[:6]}",
        poll_wait_seconds=1,
        log_level="ERROR",
    )
    stack = LocalStack(settings, set_env=monkeypatch.setenv, template=scaled_template())
    with stack:
        yield stack, (runs, images, shorts)


def _jobs(stack: LocalStack) -> dict[str, Job]:
    jobs: dict[str, Job] = {}
    for page in stack.dynamodb.get_paginator("scan").paginate(
        TableName=stack.table_name
    ):
        for item in page["Items"]:
            job = item_to_job(item)
            jobs[job.id] = job
    return jobs


def _control(stack: LocalStack) -> list[dict[str, Any]]:
    """Every item of the control table (flow control's permits, waiters, buckets)."""
    items: list[dict[str, Any]] = []
    for page in stack.dynamodb.get_paginator("scan").paginate(
        TableName=stack.provisioned.tables["ControlTable"], ConsistentRead=True
    ):
        items.extend(page["Items"])
    return items


def _holders(item: dict[str, Any]) -> int:
    return sum(1 for name in item if name.startswith("h:"))


class PermitSampler:
    """Reads the control table about once a second while the load runs: every permits item
    seen, with its holders (what `held <= limit` is checked on)."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.samples: list[tuple[str, int, int]] = []
        """(key, holders, held) of each permits item read."""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="permits", daemon=True)

    def run(self) -> None:
        while not self.stop.wait(1.0):
            for item in _control(self.stack):
                if item["sk"]["S"] == "permits":
                    held = int(item.get("held", {}).get("N", "0"))
                    self.samples.append((item["pk"]["S"], _holders(item), held))


def _peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at once (each shortened at its end by the same 0.05 s the
    attempts' overlap check allows: a stopped handler returns just after its release)."""
    edges = sorted(
        [(start, 1) for start, _ in intervals]
        + [(end - 0.05, -1) for _, end in intervals]
    )
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def _table(rows: list[tuple[str, int, int]]) -> str:
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'invariant'.ljust(width)}  checked  violations"]
    lines += [
        f"{name.ljust(width)}  {checked:7d}  {bad:10d}" for name, checked, bad in rows
    ]
    return "\n".join(lines)


def test_no_job_is_lost_under_faults(soak_stack: tuple[LocalStack, Any]) -> None:
    stack, (runs, images, shorts) = soak_stack
    sys.stderr.write(f"\nsoak seed {SEED} (JOBLINE_SOAK_SEED={SEED} repeats it)\n")

    # Given the functions' clients under every fault at once
    bootstrap.get_service()
    faults = FaultInjector(seed=SEED)
    rates = Rates(
        throttle=0.03,
        lost_response=0.03,
        latency=0.08,
        latency_ms=(5, 80),
        kill_before_send=0.01,
        kill_after_send=0.01,
        kill=InvocationKilled,
    )
    faults.randomly("dynamodb.*", rates)
    faults.randomly("sqs.*", rates)
    faults.schedule_outages(4, within=LOAD_S, duration=(0.5, 2.0), calls="dynamodb.*")
    faults.schedule_outages(2, within=LOAD_S, duration=(0.5, 2.0), calls="sqs.*")
    faults.attach(bootstrap.dynamodb_client(), bootstrap.sqs_client())

    api = Api()
    stop = threading.Event()
    with flaky_server(SEED) as flaky_url:
        # When callers use the service as a demanding user would, while duplicates arrive
        def known() -> list[tuple[str, str, str]]:
            return [
                (a.job_id, "caller", a.request.get("type", "echo"))
                for a in api.of("submit")
                if a.job_id and a.status in (200, 202)
            ]

        def send(body: str) -> None:
            stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)

        users = [
            threading.Thread(
                target=caller,
                args=(
                    api,
                    random.Random(SEED * 100 + n),
                    "caller",
                    flaky_url,
                    OPS_PER_CALLER,
                ),
                name=f"caller-{n}",
            )
            for n in range(CALLERS)
        ]
        chaos = threading.Thread(
            target=duplicator,
            args=(send, known, random.Random(SEED + 7), stop),
            daemon=True,
        )
        sampler = PermitSampler(stack)
        sampler.thread.start()
        started = time.monotonic()
        chaos.start()
        for user in users:
            user.start()
        for user in users:
            user.join(LOAD_S * 3)
        load_s = time.monotonic() - started
        stop.set()
        faults.detach()
        sampler.stop.set()
        sampler.thread.join(10)

        # And then every fault stops and the stack drains what is left: until every job is
        # final, or nothing has moved for STALL_S (a lost job never moves again; a slow machine
        # only takes longer), at most DRAIN_MAX_S
        drain_started = time.monotonic()
        moved_at, last_state = drain_started, None
        while time.monotonic() - drain_started < DRAIN_MAX_S:
            jobs = _jobs(stack)
            if jobs and all(job.status in FINAL for job in jobs.values()):
                break
            state = {(j.id, j.status, j.attempts, j.updated_at) for j in jobs.values()}
            if state != last_state:
                moved_at, last_state = time.monotonic(), state
            elif time.monotonic() - moved_at > STALL_S:
                break
            time.sleep(1.0)
        drain_s = time.monotonic() - drain_started
        # And the flow sweep runs twice more on its (scaled) schedule, as it would on a quiet
        # deployment: what a fault left behind (a lost wake, a lost release) is taken back
        [sweeper] = [p for p in stack.pollers if isinstance(p, SchedulePoller)]
        swept = sweeper.invocations + 2
        for _ in range(int(SWEEP_S * 6)):
            if sweeper.invocations >= swept:
                break
            time.sleep(1.0)

    # Then the invariants hold, read from the table, the stream and the answers
    jobs = _jobs(stack)
    rows: list[tuple[str, int, int]] = []
    problems: list[str] = []

    def check(name: str, items: list[Any], bad: list[str]) -> None:
        rows.append((name, len(items), len(bad)))
        problems.extend(f"{name}: {detail}" for detail in bad[:10])

    submits = api.of("submit")
    acked = [a for a in submits if a.status in (200, 202)]
    by_key: dict[str, set[str | None]] = {}
    for answer in acked:
        if answer.key:
            by_key.setdefault(answer.key, set()).add(answer.job_id)
    check(
        "every acknowledged submit is exactly one job",
        acked,
        [f"{a.job_id} missing" for a in acked if a.job_id not in jobs]
        + [f"key {k}: {ids}" for k, ids in by_key.items() if len(ids) != 1],
    )
    check(
        "no job lost: every job final",
        list(jobs.values()),
        [f"{job.id} {job.type} {job.status.value} attempts={job.attempts} run={job.run} "
         f"updated={job.updated_at:%H:%M:%S.%f} lease_until={job.lease_until} "
         f"run_after={job.run_after} dispatch={job.dispatch} blocked_on={job.blocked_on} "
         f"images={[(i['status'], i['attempts'], i['blocked']) for i in images.sequence(job.id)]}"
         for job in jobs.values() if job.status not in FINAL],
    )  # fmt: skip
    unanswered = [a for a in submits if a.status is None or a.status >= 500]
    check(
        "a 5xx/killed submit left no job, or it ran",
        unanswered,
        [
            f"{a.job_id} {jobs[a.job_id].status.value}"
            for a in unanswered
            if a.job_id in jobs and jobs[a.job_id].status not in FINAL
        ],
    )
    reruns: list[str] = []
    overlaps: list[str] = []
    after_success: list[str] = []
    for job_id, job in jobs.items():
        job_runs = sorted(runs.of(job_id), key=lambda run: run.started)
        successes = [run for run in job_runs if run.succeeded]
        if len(successes) > 1:
            reruns.append(f"{job_id} ran to success {len(successes)} times")
        for earlier, later in itertools.pairwise(job_runs):
            if later.started < earlier.ended - 0.05:
                overlaps.append(
                    f"{job_id} attempts {earlier.attempt} and {later.attempt}"
                )
        if job.status is JobStatus.SUCCEEDED and job.finished_at is not None:
            done = job.finished_at.timestamp()
            late = [run for run in job_runs if run.started > done + 0.05]
            if late:
                after_success.append(
                    f"{job_id} ran {len(late)} times after its success"
                )
    ran = [job for job in jobs.values() if runs.of(job.id)]
    check("no handler ran again after its success was recorded", ran, after_success)
    check("no two live attempts of a job at once", ran, overlaps)
    check(
        "attempts <= max_attempts",
        list(jobs.values()),
        [f"{j.id} {j.attempts}/{j.max_attempts}" for j in jobs.values()
         if j.attempts > j.max_attempts],
    )  # fmt: skip
    history_bad = []
    for job in jobs.values():
        numbers = [entry.attempt for entry in job.history]
        generations: list[list[int]] = []
        for number in numbers:
            if number == 1 or not generations:
                generations.append([])
            generations[-1].append(number)
        if any(gen != list(range(1, len(gen) + 1)) for gen in generations) or (
            job.status in FINAL
            and job.status is not JobStatus.REJECTED
            and (generations[-1] if generations else [])
            != list(range(1, job.attempts + 1))
        ):
            history_bad.append(f"{job.id} attempts={job.attempts} history={numbers}")
    check("one history entry per attempt", list(jobs.values()), history_bad)
    backwards = []
    for job_id in jobs:
        sequence = images.sequence(job_id)
        for before, after in itertools.pairwise(sequence):
            step = (JobStatus(before["status"]), JobStatus(after["status"]))
            same = step[0] is step[1]
            reset = after["attempts"] == 0 and step[1] is JobStatus.QUEUED
            undone = (  # a park or an unclaim gives back the attempt of its claim
                step == (JobStatus.RUNNING, JobStatus.QUEUED)
                and after["attempts"] == before["attempts"] - 1
            )
            if (not same and step not in STEPS) or (
                after["attempts"] < before["attempts"] and not reset and not undone
            ):
                backwards.append(f"{job_id} {before} -> {after}")
    check("no state moved backwards", list(jobs), backwards)
    cancels = [a for a in api.of("cancel") if a.status in (200, 202)]
    retried = {a.job_id for a in api.of("retry") if a.status == 200}
    late_attempts = []
    for answer in cancels:
        if answer.job_id in retried:
            continue
        attempts_then = answer.body.get("attempts", 0)
        later = [
            run for run in runs.of(answer.job_id or "")
            if run.started > answer.at + 0.05 and run.attempt > attempts_then
        ]  # fmt: skip
        if later:
            late_attempts.append(
                f"{answer.job_id} attempt {later[0].attempt} after cancel"
            )
    check("an acknowledged cancel means no later attempt", cancels, late_attempts)
    replays = [a for a in api.of("replay") if a.status is not None and a.status < 500]
    originals = {a.key: a for a in acked}
    check(
        "replays return the original",
        replays,
        [
            f"{a.key}: {a.status} {a.job_id} vs {originals[a.key].job_id}"
            for a in replays
            if a.status != 200 or a.job_id != originals[a.key].job_id
        ],
    )

    # Flow control (issue 18): a key's running jobs never exceed its limit; every sampled
    # permits item within its limit; a park gives its claim's attempt back; every parked job
    # is woken (or ends); at quiescence nothing is held and nothing waits
    limited = [job for job in jobs.values() if job.type == "limited"]
    by_slot: dict[str, list[tuple[float, float]]] = {}
    for job in limited:
        slot = f"{job.owner}:{job.payload['slot']}"
        by_slot.setdefault(slot, []).extend(
            (run.started, run.ended) for run in runs.of(job.id)
        )
    check(
        "a key's running jobs never exceed its limit",
        [run for job in limited for run in runs.of(job.id)],
        [
            f"{slot}: {peak} at once"
            for slot, intervals in by_slot.items()
            if (peak := _peak_overlap(intervals)) > SLOT_LIMIT
        ],
    )
    check(
        "held <= limit on every sampled permits item",
        sampler.samples,
        [
            f"{key}: {holders} holders, held {held}"
            for key, holders, held in sampler.samples
            if holders > SLOT_LIMIT or held != holders
        ],
    )
    parked: list[str] = []
    parks_bad: list[str] = []
    for job_id in jobs:
        sequence = images.sequence(job_id)
        for before, after in itertools.pairwise(sequence):
            if after["blocked"] and not before["blocked"]:
                parked.append(job_id)
                if after["attempts"] != before["attempts"] - 1:
                    parks_bad.append(f"{job_id} {before} -> {after}")
    check("a park gives its claim's attempt back", parked, parks_bad)
    parked_jobs = sorted(set(parked))
    check(
        "every parked job was woken or ended",
        parked_jobs,
        [
            f"{job_id} {jobs[job_id].status.value} blocked_on={jobs[job_id].blocked_on}"
            for job_id in parked_jobs
            if jobs[job_id].blocked_on is not None or jobs[job_id].status not in FINAL
        ],
    )
    control = _control(stack)
    check(
        "at quiescence nothing is held and nothing waits",
        control,
        [
            f"{item['pk']['S']} {item['sk']['S']} holders={_holders(item)}"
            for item in control
            if _holders(item) or item["sk"]["S"].startswith("w#")
        ],
    )

    sys.stderr.write(
        f"\nflow control: {len(limited)} limited jobs, {len(parked_jobs)} parked "
        f"({len(parked)} parks), {len(sampler.samples)} permit samples, "
        f"{sweeper.invocations} sweeps\n"
    )
    sys.stderr.write(
        f"\nsoak: {len(jobs)} jobs, {len(runs.runs)} handler runs "
        f"({len(reruns)} jobs ran to success more than once: at-least-once re-runs after a "
        f"lost outcome), {len(submits)} submits ({len(unanswered)} unanswered or 5xx), "
        f"{shorts.count} short invocations; load {load_s:.0f} s, drain {drain_s:.0f} s\n"
    )
    sys.stderr.write(_table(rows) + "\n")
    faults.print_table("faults injected")
    assert len(jobs) >= 200
    assert parked_jobs, (
        "no job met a full key: the flow control invariants checked nothing"
    )
    assert faults.count() > 100
    assert problems == [], "\n".join(problems)
