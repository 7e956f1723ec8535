"""The soak: a few hundred mixed jobs through the whole local stack under AWS's own failure modes,
all at once, then an invariant table read from the table, the queues, every image the table's
stream carried and what the callers were answered (tests/soak/invariants.py). Seeded
(`JOBLINE_SOAK_SEED`, printed); about three minutes on 2 cores (the drain waits while jobs still
move).

Injected on the functions' DynamoDB and SQS clients (`tests/support/faults.py`): throttles, lost
responses (applied, then a 500 or a read timeout, which botocore retries), latency, outage
windows, environments killed before and after a request (the API mid-request, a worker mid-batch,
the outbox mid-send), and the harder faults of issue 22:
- straggler writes, applied after their caller gave up: a DynamoDB write's answer held past the
  read timeout, then sent again (`Held`), and a write sent only after its caller was told it
  timed out and moved on, or its environment ended (`Late`);
- 100 % throttle bursts of a few seconds on one kind of call at a time.
Also (tests/soak/harness.py): worker clocks skewed by up to ±2 s per invocation; copies of running
jobs' messages driven to the jobs DLQ; a dead-letter consumer that lags across a retry; callers
that retry a job the moment it fails and cancel racing requeues (besides cancels and retries at
random moments); stream records replayed late to the outbox; worker invocations with little time
left; duplicate and stale deliveries of job messages; a flaky HTTP server.

moto evaluates a condition and applies a write in separate Python steps, so concurrent
conditional writes could both win under a threaded moto server: the stack's server serializes
DynamoDB requests (`jobline_local.endpoint.SerializedMotoServer`), so what the soak finds is
Jobline's, not moto's.
"""

from __future__ import annotations

import importlib
import itertools
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from jobline import bootstrap
from jobline.aws.items import item_to_job
from jobline.models import Job, JobStatus
from jobline_local import stack as local_stack_module
from jobline_local.endpoint import local_client
from jobline_local.poller import InvocationKilled, import_handler
from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack

from tests.soak.harness import (
    CALL,
    SOAK_SETTINGS,
    Api,
    DeadLetterConsumer,
    Images,
    Reactions,
    RunLog,
    ShortInvocations,
    SkewedClocks,
    StreamReplays,
    caller,
    dead_letter_copies,
    duplicator,
    flaky_server,
    racer,
    scaled_template,
    stream_images,
)
from tests.soak.invariants import (
    FINAL,
    Finding,
    api_writes,
    applied_tokens,
    conflicts_name_refusing_states,
    dead_letters_end_their_own_run,
    never_backwards,
    no_error_for_applied_writes,
    one_outcome_per_run,
)
from tests.support.faults import (
    FaultInjector,
    FaultKind,
    Held,
    Late,
    Rates,
    sets_any,
)

pytestmark = pytest.mark.soak

SEED = int(os.environ.get("JOBLINE_SOAK_SEED", "20261201"))
CALLERS = 8
OPS_PER_CALLER = 42
RACER_OPS = 40
MIN_JOBS = 300
LOAD_S = 40.0
"""About how long the callers take: the outage windows and throttle bursts are placed in it."""
STALL_S = 30.0
"""A drain ends when no job has changed for this long: more than a visibility timeout
(harness.VISIBILITY_S) plus the longest backoff, so a message that is still coming back is
waited for."""
DRAIN_MAX_S = 300.0
SQS_CONCURRENCY = 10
"""Invocations at once per SQS mapping (never above its MaximumConcurrency): a worker batch lasts
as long as its slowest job or held write, and with the local default of four, messages waited
for many seconds before a claim (fewer races between a retry's claim and a stale write)."""
BURST_CALLS = (
    "dynamodb.UpdateItem",
    "dynamodb.PutItem",
    "dynamodb.GetItem",
    "sqs.SendMessageBatch",
    "sqs.ChangeMessageVisibility",
)
"""The call kinds a throttle burst may hit (one per burst)."""
STRAGGLING = ("finished_at", "run_after", "progress", "control_tokens")
"""What the UpdateItems set that straggle most: outcomes, requeues, progress, API writes."""


@dataclass
class Parts:
    """What the soak's fixture wired into the stack."""

    runs: RunLog
    images: Images
    shorts: ShortInvocations
    clocks: SkewedClocks
    dead_letters: DeadLetterConsumer | None = None


@pytest.fixture
def soak_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalStack, Parts]]:
    parts = Parts(
        runs=RunLog(),
        images=Images(),
        shorts=ShortInvocations(random.Random(SEED + 1), share=0.1),
        clocks=SkewedClocks(random.Random(SEED + 2), max_s=2.0),
    )
    for name, value in SOAK_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(bootstrap, "default_registry", parts.runs.registry)

    def instrumented(spec: str) -> Any:
        # (imported by the stack once it has configured logging: a handler module configures
        # it on import, and only the first configuration acts)
        handler = import_handler(spec)
        if spec.startswith("jobline_outbox.handler"):
            return parts.images.tap(handler)
        if spec.startswith("jobline_worker."):
            entry = importlib.import_module(spec.rpartition(".")[0])
            parts.clocks.install(monkeypatch, entry)
            return parts.clocks.wrap(parts.shorts.wrap(handler))
        if spec.startswith("jobline_dead_letters."):
            # The stack imports its handlers once its queues exist
            # (one consumer for both lanes' DLQs: the function has a mapping on each)
            if parts.dead_letters is None:
                urls = stack.provisioned.queue_urls
                parts.dead_letters = DeadLetterConsumer(
                    stack.sqs,
                    urls["JobsDeadLetterQueue"],
                    parts.images,
                    urls_by_arn={
                        stack.provisioned.queue_arns[name]: urls[name]
                        for name in DEAD_LETTER_QUEUES
                    },
                )
            return parts.dead_letters.wrap(handler)
        return handler

    monkeypatch.setattr(local_stack_module, "import_handler", instrumented)
    settings = LocalSettings(
        api_port=0,
        moto_port=0,
        prefix=f"soak-{uuid.uuid4().hex[:6]}",
        poll_wait_seconds=1,
        log_level="ERROR",
        sqs_concurrency=SQS_CONCURRENCY,
    )
    stack = LocalStack(settings, set_env=monkeypatch.setenv, template=scaled_template())
    with stack:
        yield stack, parts


DEAD_LETTER_QUEUES = ("JobsDeadLetterQueue", "LongJobsDeadLetterQueue")
"""Both lanes' DLQs (the dead-letter function has a mapping on each)."""


def _jobs(stack: LocalStack) -> dict[str, Job]:
    jobs: dict[str, Job] = {}
    for page in stack.dynamodb.get_paginator("scan").paginate(
        TableName=stack.table_name, ConsistentRead=True
    ):
        for item in page["Items"]:
            job = item_to_job(item)
            jobs[job.id] = job
    return jobs


def _queue_empty(stack: LocalStack, name: str) -> bool:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.provisioned.queue_urls[name],
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ],
    )["Attributes"]
    return all(value == "0" for value in attributes.values())


def _drained(stack: LocalStack, parts: Parts, faults: FaultInjector) -> bool:
    """Whether the stream shows every job final, no straggler is still to be sent and the jobs
    DLQ is consumed."""
    assert parts.dead_letters is not None
    jobs = parts.images.jobs()
    return (
        bool(jobs)
        and all(job.status in FINAL for job in jobs)
        and not any(
            isinstance(d.fault, Late) and d.sent_at is None for d in faults.decisions
        )
        and parts.dead_letters.lagging() == 0
        and all(_queue_empty(stack, name) for name in DEAD_LETTER_QUEUES)
    )


def _table(header: tuple[str, str, str], rows: list[tuple[str, int, int]]) -> str:
    width = max(len(name) for name, _, _ in [(header[0], 0, 0), *rows])
    lines = [f"{header[0].ljust(width)}  {header[1]:>8}  {header[2]:>10}"]
    lines += [f"{name.ljust(width)}  {a:8d}  {b:10d}" for name, a, b in rows]
    return "\n".join(lines)


def test_no_job_is_lost_under_faults(soak_stack: tuple[LocalStack, Parts]) -> None:
    stack, parts = soak_stack
    sys.stderr.write(f"\nsoak seed {SEED} (JOBLINE_SOAK_SEED={SEED} repeats it)\n")

    # Given the functions' clients under every fault at once: the usual ones everywhere,
    # stragglers on DynamoDB writes, outages, and 100 % throttle bursts on one call kind at a time
    bootstrap.get_service()
    faults = FaultInjector(seed=SEED, clock=time.time, tag=CALL.get)
    rates = Rates(
        throttle=0.03,
        lost_response=0.03,
        latency=0.08,
        latency_ms=(5, 80),
        kill_before_send=0.01,
        kill_after_send=0.01,
        kill=InvocationKilled,
    )
    # (more of them on the writes that ended the promises of issue 22: outcomes, requeues,
    # progress reports, API writes, submits)
    stragglers = replace(rates, held=0.02, late=0.02, held_s=(1.2, 3.0))
    faults.randomly(
        "dynamodb.UpdateItem",
        replace(stragglers, held=0.06, late=0.06),
        where=sets_any(*STRAGGLING),
    )
    faults.randomly("dynamodb.UpdateItem", stragglers)
    faults.randomly("dynamodb.PutItem", replace(stragglers, held=0.06))
    faults.randomly("dynamodb.*", rates)
    faults.randomly("sqs.*", rates)
    faults.schedule_outages(4, within=LOAD_S, duration=(0.5, 2.0), calls="dynamodb.*")
    faults.schedule_outages(2, within=LOAD_S, duration=(0.5, 2.0), calls="sqs.*")
    bursts = faults.throttle_bursts(
        4, within=LOAD_S, duration=(2.0, 4.0), calls=BURST_CALLS
    )
    faults.attach(bootstrap.dynamodb_client(), bootstrap.sqs_client())
    try:
        _soak(stack, parts, faults, bursts)
    finally:
        faults.detach()


def _soak(
    stack: LocalStack, parts: Parts, faults: FaultInjector, bursts: list[Any]
) -> None:
    runs, images, dead_letters = parts.runs, parts.images, parts.dead_letters
    assert dead_letters is not None
    api = Api()
    stop = threading.Event()
    reactions = Reactions(api, random.Random(SEED + 3))
    images.listeners.append(reactions.on_image)
    replays = StreamReplays(images, random.Random(SEED + 4))
    replays.handler = import_handler("jobline_outbox.handler.lambda_handler")
    with flaky_server(SEED) as flaky_url:
        # When callers use the service as a demanding user would, while duplicates arrive,
        # running jobs' messages reach the DLQ and the stream's records come back late
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
                    f"caller{n}",
                ),
                name=f"caller-{n}",
            )
            for n in range(CALLERS)
        ]
        users.append(
            threading.Thread(
                target=racer,
                args=(
                    api,
                    random.Random(SEED + 5),
                    "racer",
                    flaky_url,
                    RACER_OPS,
                    dead_letters,
                ),
                name="racer",
            )
        )
        chaos = [
            threading.Thread(
                target=duplicator,
                args=(send, images, random.Random(SEED + 7), stop),
                daemon=True,
            ),
            threading.Thread(
                target=dead_letter_copies,
                args=(dead_letters, images, random.Random(SEED + 8), stop),
                daemon=True,
            ),
            threading.Thread(target=replays.run, args=(stop,), daemon=True),
        ]
        started = time.monotonic()
        for thread in [*chaos, *users]:
            thread.start()
        for user in users:
            user.join(LOAD_S * 3)
        load_s = time.monotonic() - started
        stop.set()
        reactions.close()
        for thread in chaos:
            thread.join(10)
        faults.stop_faults()

        # And then every fault stops and the stack drains what is left: until every job is
        # final, the jobs DLQ is consumed (its lagging copies released) and every straggler
        # sent, or nothing has moved for STALL_S (a lost job never moves again; a slow machine
        # only takes longer), at most DRAIN_MAX_S. The stream tells (a scan of the table would
        # hold the serialized server for seconds); the table confirms.
        drain_started = time.monotonic()
        moved_at, last_state = drain_started, (-1, -1)
        while time.monotonic() - drain_started < DRAIN_MAX_S:
            time.sleep(1.0)
            if _drained(stack, parts, faults) and all(
                job.status in FINAL for job in _jobs(stack).values()
            ):
                break
            state = (images.last_sequence, images.handed_over)
            if state != last_state:
                moved_at, last_state = time.monotonic(), state
            elif time.monotonic() - moved_at > STALL_S:
                break
        drain_s = time.monotonic() - drain_started

    # Then the invariants hold, read from the table, every image of the stream and the answers
    jobs = _jobs(stack)
    streams = local_client(
        "dynamodbstreams", stack.aws_endpoint, stack.settings.aws_region
    )
    stream = stream_images(streams, stack.provisioned.stream_arns["JobsTable"])
    findings = _check(jobs, stream, api, faults, parts)
    submits = api.of("submit")
    unanswered = [a for a in submits if a.status is None or a.status >= 500]
    reruns = sum(1 for job_id in jobs if sum(r.succeeded for r in runs.of(job_id)) > 1)
    statuses = Counter(
        f"{a.action} {a.status}" for a in api.answers if a.action != "get"
    )
    sys.stderr.write(
        f"\nsoak: {len(jobs)} jobs, {len(runs.runs)} handler runs ({reruns} jobs ran to "
        f"success more than once: at-least-once re-runs after a lost outcome), "
        f"{len(submits)} submits ({len(unanswered)} unanswered or 5xx), "
        f"{sum(len(s) for s in stream.values())} stream images; "
        f"load {load_s:.0f} s, drain {drain_s:.0f} s\n"
        f"answers: {dict(sorted(statuses.items()))}\n"
    )
    sys.stderr.write(
        _table(
            ("invariant", "checked", "violations"),
            [(f.name, f.checked, len(f.bad)) for f in findings],
        )
        + "\n"
    )
    noted = [(f"{f.name}: {what}", n) for f in findings for what, n in f.noted.items()]
    if noted:
        sys.stderr.write("noted (not violations):\n")
        sys.stderr.write("".join(f"  {n:5d}  {what}\n" for what, n in sorted(noted)))
    for finding in findings:
        for detail in finding.bad[:10]:
            sys.stderr.write(f"VIOLATION {finding.name}: {detail}\n")

    families = _families(faults, parts, reactions, replays, bursts)
    sys.stderr.write(_table(("fault family", "injected", "effects"), families) + "\n")
    faults.print_table("faults injected")
    problems = [f"{f.name}: {detail}" for f in findings for detail in f.bad[:10]]
    assert problems == [], "\n".join(problems)
    assert len(jobs) >= MIN_JOBS
    assert faults.count() > 100
    assert all(injected > 0 for _, injected, _ in families), families


def _families(
    faults: FaultInjector,
    parts: Parts,
    reactions: Reactions,
    replays: StreamReplays,
    bursts: list[Any],
) -> list[tuple[str, int, int]]:
    """Each fault family of the soak: how many were injected, and a count of what they did."""
    late = [d for d in faults.decisions if isinstance(d.fault, Late)]
    held = [d for d in faults.decisions if isinstance(d.fault, Held)]
    assert parts.dead_letters is not None
    dlq = parts.dead_letters.counts
    skews = parts.clocks.offsets
    return [
        (
            "straggler: held past the read timeout, sent again (applied)",
            faults.count(FaultKind.HELD_RESPONSE),
            sum(1 for d in held if d.server_status == 200),
        ),
        (
            "straggler: sent after its caller moved on (applied)",
            len(late),
            sum(1 for d in late if d.server_status == 200),
        ),
        (
            "running job's message copied to the DLQ (consumer saw)",
            dlq["copies"],
            len(parts.dead_letters.seen),
        ),
        (
            "DLQ consumer lagging (released after a retry)",
            dlq["lagging copies"],
            dlq["released after a retry"],
        ),
        (
            "retry the moment a job failed (answered 200)",
            reactions.counts["retries the moment a job failed"],
            reactions.counts["retry answered 200"],
        ),
        (
            "cancel the moment a job was requeued (+ at random in a run)",
            reactions.counts["cancels the moment a job was requeued"],
            reactions.counts["cancels at a random instant of a run"],
        ),
        (
            "worker invocations on a skewed clock (>1 s off)",
            len(skews),
            sum(1 for s in skews.values() if abs(s) > 1.0),
        ),
        (
            "100% throttle bursts (requests throttled)",
            len(bursts),
            faults.count(FaultKind.THROTTLE, source="burst"),
        ),
        (
            "stream records replayed late to the outbox (asking for a message)",
            replays.replayed,
            replays.dispatching,
        ),
        ("short worker invocations", parts.shorts.count, 0),
    ]


def _check(
    jobs: dict[str, Job],
    stream: dict[str, list[Any]],
    api: Api,
    faults: FaultInjector,
    parts: Parts,
) -> list[Finding]:
    runs = parts.runs
    assert parts.dead_letters is not None
    findings: list[Finding] = []

    def check(name: str, items: list[Any], bad: list[str]) -> None:
        findings.append(Finding(name, len(items), bad))

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
        [f"{job.id} {job.status.value} attempts={job.attempts}" for job in jobs.values()
         if job.status not in FINAL],
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
    overlaps: list[str] = []
    after_success: list[str] = []
    for job_id, job in jobs.items():
        job_runs = sorted(runs.of(job_id), key=lambda run: run.started)
        # An attempt is live from its handler's start until the handler returns or the attempt
        # stops waiting for it (its deadline): a handler thread blocked past it (in a held
        # write) is fenced off, and never overlaps a live attempt.
        for earlier, later in itertools.pairwise(job_runs):
            if later.started < earlier.live_until - 0.05:
                overlaps.append(
                    f"{job_id} run {earlier.run} attempt {earlier.attempt} and "
                    f"run {later.run} attempt {later.attempt}"
                )
        if job.status is JobStatus.SUCCEEDED and job.finished_at is not None:
            # finished_at is the worker's clock: skewed, so read back to wall-clock time
            success = job.history[-1].request_id if job.history else None
            done = parts.clocks.true_time(job.finished_at, success)
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
        by_run: dict[int, list[int]] = {}
        for entry in job.history:
            by_run.setdefault(entry.run, []).append(entry.attempt)
        if any(numbers != list(range(1, len(numbers) + 1)) for numbers in by_run.values()) or (
            job.status in FINAL
            and job.status is not JobStatus.REJECTED
            and by_run.get(job.run, []) != list(range(1, job.attempts + 1))
        ):  # fmt: skip
            history_bad.append(
                f"{job.id} run={job.run} attempts={job.attempts} "
                f"history={[(e.run, e.attempt) for e in job.history]}"
            )
    check("one history entry per attempt, per run", list(jobs.values()), history_bad)
    cancels = [a for a in api.of("cancel") if a.status in (200, 202)]
    retried = {a.job_id for a in api.of("retry") if a.status == 200}
    late_attempts = []
    for answer in cancels:
        if answer.job_id in retried:
            continue
        attempts_then = answer.body.get("attempts", 0)
        after_cancel = [
            run for run in runs.of(answer.job_id or "")
            if run.started > answer.at + 0.05 and run.attempt > attempts_then
        ]  # fmt: skip
        if after_cancel:
            late_attempts.append(
                f"{answer.job_id} attempt {after_cancel[0].attempt} after cancel"
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
    check(
        "every job's writes are in the stream",
        list(jobs.values()),
        [
            f"{job_id}: table {job.status.value}, stream {seen[-1].job.status.value if seen else None}"
            for job_id, job in jobs.items()
            if not (seen := stream.get(job_id)) or seen[-1].job != job
        ],
    )
    writes = api_writes(api.answers, faults.decisions)
    findings += [
        one_outcome_per_run(stream),
        never_backwards(stream, writes),
        dead_letters_end_their_own_run(stream, parts.dead_letters.seen, runs.runs),
        conflicts_name_refusing_states(api.answers, stream),
        no_error_for_applied_writes(writes, applied_tokens(stream)),
    ]
    return findings
