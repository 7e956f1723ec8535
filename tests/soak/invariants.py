"""The soak's invariants, as pure functions of what the soak recorded: every image the jobs table's
stream carried (read from the stream itself once the stack has drained, in stream order, one
image per write), what each API call was answered, what the fault injector did with each request
of the functions' clients, what the dead-letter consumer was handed, and every handler run.

Each check returns a `Finding`: how many things it checked and what broke (one line each), and
what it noted without calling it broken (`noted`, shown in the soak's report).

From the images, not only final states:
- one outcome per run: per (run, attempt) at most one history entry; per run at most one final
  outcome (status, result, error);
- nothing moves backwards: each step between consecutive images is an arrow of the state
  diagram; a final job leaves its state only into `queued` of the next run (attempts 0), by a
  retry the API made (below); the run never goes down; within a run attempts never go down; the
  history is only ever appended to (never shortened, never rewritten); within a run and attempt
  the progress never goes away, and neither its `seq` nor its percent goes down;
- a dead letter ends only its own incarnation: a step into `dead_lettered` is in the run of a
  dead-letter record the consumer was handed, and never under a live lease: the image before it,
  if running, shows a lease that ended before the dead letter was written, and no handler of that
  run was still inside its attempt (from its start to its deadline) at that moment.

From the answers:
- 409 only for states that refuse: a cancel's 409 names a finished state, a retry's names
  queued, running, succeeded, rejected or a full history;
- no 5xx or 409 for an applied write (below).

Attributing API writes. The API answers carry no write token, so the soak tags every API call:
its test client sends a call id (`X-Soak-Call`, also its `X-Correlation-Id`), a test-only
middleware around the API app puts it in a context variable for the request, `asyncio.to_thread`
copies it into the thread that runs the use case, and the fault injector reads it in that thread
for each request the call makes (`Call.tag`). Each write request carries its write token (a
PutItem's item, an UpdateItem's `:write_token`), the same in every try of one logical write: so
each call's token, and each try's fate, is known. A write applied leaves its token on the item:
as the write token of the image it made, among `control_tokens` (submit, cancel, retry), or on a
history entry. So:
- a step final -> queued is attributed by its image's write token to the retry call that made
  it; a step no retry call made is a violation (the soak makes no redrive);
- an API write is applied when its token appears on any image. One answered 5xx or 409 although
  applied is a violation when its caller had the evidence: a try of the call whose answer it saw
  (no injected fault, or only a latency) reached DynamoDB after the try that applied the write
  (whose answer was lost, held or never came: its server status is recorded by the injector), or
  the applying try's answer was seen itself. Two cases are physics, not bugs, and are only noted:
  the applying try was a straggler sent after the call had answered (no server-side condition can
  bound a write by time), or every try after the applying one went unanswered (throttled, an
  outage, lost again) so the call could not know: it answered 503, the honest "unknown" (a submit
  says under which id). A call whose environment was killed gave no answer at all (noted).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobline.aws.repository import WRITE_TOKEN
from jobline.models import Job, JobStatus

from tests.support.faults import Call, Decision, Late
from tests.support.jobfields import FINAL_STATUSES

FINAL = frozenset(JobStatus(status) for status in FINAL_STATUSES)
STEPS = frozenset(
    {
        (JobStatus.QUEUED, JobStatus.RUNNING),
        (JobStatus.QUEUED, JobStatus.CANCELLED),
        (JobStatus.QUEUED, JobStatus.FAILED),
        (JobStatus.QUEUED, JobStatus.DEAD_LETTERED),
        (JobStatus.RUNNING, JobStatus.QUEUED),
        (JobStatus.RUNNING, JobStatus.SUCCEEDED),
        (JobStatus.RUNNING, JobStatus.FAILED),
        (JobStatus.RUNNING, JobStatus.CANCELLED),
        (JobStatus.RUNNING, JobStatus.DEAD_LETTERED),
    }
)
"""The arrows of jobline.lifecycle's diagram within a run, as statuses (a write may also keep the
status). The arrows into the next run (failed | dead_lettered | cancelled -> queued) are checked
on their own."""
NEXT_RUN_FROM = frozenset(
    {JobStatus.FAILED, JobStatus.DEAD_LETTERED, JobStatus.CANCELLED}
)
CANCEL_REFUSED_IN = frozenset(
    {"succeeded", "failed", "cancelled", "dead_lettered", "rejected"}
)
RETRY_REFUSED_IN = frozenset({"queued", "running", "succeeded", "rejected"})
HISTORY_FULL = re.compile(r"^(failed|dead_lettered|cancelled) after \d+ attempts$")
NAMED_STATE = re.compile(r": it is (.+)$")
WRITES = ("dynamodb.PutItem", "dynamodb.UpdateItem")
API_WRITES = ("submit", "replay", "cancel", "retry")


# ----------------------------------------------------------------------------- what was seen
@dataclass(frozen=True)
class Image:
    """One write of a job as the table's stream carried it."""

    sequence: int
    job: Job
    write_token: str | None

    @classmethod
    def of(cls, record: Mapping[str, Any], job: Job) -> Image:
        """The image of a stream record (its `NewImage` read as `job`)."""
        stream = record["dynamodb"]
        token = stream["NewImage"].get(WRITE_TOKEN, {}).get("S")
        return cls(int(stream["SequenceNumber"]), job, token)


@dataclass
class Answer:
    """One API call of a caller and what it got (status None: no answer, the API was killed).
    `call_id` tags the call's requests (see the module docstring); `at`/`ended` are wall-clock
    seconds."""

    action: str
    job_id: str | None
    status: int | None
    at: float
    body: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    call_id: str = ""
    ended: float = 0.0
    owner: str = ""


@dataclass(frozen=True)
class Run:
    """One run of a job's handler, as the handler saw it (wall-clock seconds): `deadline` is when
    its attempt stopped waiting for it (after that, whatever the thread does is fenced off)."""

    job_id: str
    run: int
    attempt: int
    started: float
    ended: float
    deadline: float
    succeeded: bool

    @property
    def live_until(self) -> float:
        """When the attempt this run belongs to stopped being live."""
        return min(self.ended, self.deadline)


@dataclass(frozen=True)
class DeadLetterSeen:
    """A record the dead-letter consumer was handed (the job and run its message named)."""

    job_id: str
    run: int | None
    at: float


@dataclass
class Finding:
    """One invariant: how many things were checked, what broke, what was noted."""

    name: str
    checked: int
    bad: list[str] = field(default_factory=list)
    noted: Counter[str] = field(default_factory=Counter)


# ------------------------------------------------------------------------- API call writes
def write_token(call: Call) -> str | None:
    """The write token a write request carries (a PutItem's item, an UpdateItem's value)."""
    if call.kind == "dynamodb.PutItem":
        token = call.params.get("Item", {}).get(WRITE_TOKEN, {}).get("S")
    elif call.kind == "dynamodb.UpdateItem":
        values = call.params.get("ExpressionAttributeValues", {})
        token = values.get(":write_token", {}).get("S")
    else:
        token = None
    return token if isinstance(token, str) else None


@dataclass(frozen=True)
class ApiWrite:
    """An API call that writes, with every request it made (in order)."""

    answer: Answer
    tries: tuple[Decision, ...]

    @property
    def token(self) -> str | None:
        """The token of the call's write (None: it never got as far as writing)."""
        return next(
            (t for d in self.tries if (t := write_token(d.call)) is not None), None
        )

    @property
    def writes(self) -> list[Decision]:
        """The tries of its write (every decision of its token)."""
        token = self.token
        return [d for d in self.tries if token and write_token(d.call) == token]


def api_writes(
    answers: Iterable[Answer], decisions: Iterable[Decision]
) -> dict[str, ApiWrite]:
    """Every writing API call by its call id, with its requests."""
    tries: dict[str, list[Decision]] = {}
    for decision in decisions:
        if decision.call.tag:
            tries.setdefault(decision.call.tag, []).append(decision)
    return {
        a.call_id: ApiWrite(a, tuple(tries.get(a.call_id, [])))
        for a in answers
        if a.action in API_WRITES
    }


def applied_tokens(images: Mapping[str, Sequence[Image]]) -> set[str]:
    """Every token an image shows applied: write tokens, control tokens, history tokens."""
    tokens: set[str] = set()
    for image in itertools.chain.from_iterable(images.values()):
        if image.write_token:
            tokens.add(image.write_token)
        tokens.update(image.job.control_tokens)
        tokens.update(e.token for e in image.job.history if e.token)
    return tokens


# ---------------------------------------------------------------------------------- checks
def _outcome(job: Job) -> str:
    error = job.error.model_dump_json() if job.error else None
    result = json.dumps(job.result, sort_keys=True)
    return f"{job.status.value} result={result} error={error}"


def one_outcome_per_run(images: Mapping[str, Sequence[Image]]) -> Finding:
    """Per (run, attempt) at most one history entry in any image; per run at most one final
    outcome over all its images."""
    finding = Finding("one outcome per run (every image)", 0)
    for job_id, sequence in images.items():
        outcomes: dict[int, set[str]] = {}
        doubled: set[tuple[int, int]] = set()
        for image in sequence:
            entries = Counter((e.run, e.attempt) for e in image.job.history)
            doubled.update(key for key, n in entries.items() if n > 1)
            if image.job.status in FINAL:
                outcomes.setdefault(image.job.run, set()).add(_outcome(image.job))
        runs = {image.job.run for image in sequence}
        finding.checked += len(runs)
        finding.bad += [
            f"{job_id} run {run} attempt {attempt}: two history entries"
            for run, attempt in sorted(doubled)
        ]
        finding.bad += [
            f"{job_id} run {run}: {len(seen)} outcomes {sorted(seen)}"
            for run, seen in sorted(outcomes.items())
            if len(seen) > 1
        ]
    return finding


def _progress_shrank(before: Job, after: Job) -> str | None:
    """Why `after`'s progress is behind `before`'s in the same attempt, or None."""
    old, new = before.progress, after.progress
    if old is None:
        return None
    if new is None:
        return f"progress {old.percent}% (seq {old.seq}) went away"
    if old.seq is not None and new.seq is not None and new.seq < old.seq:
        return f"progress seq {old.seq} -> {new.seq}"
    if new.percent < old.percent:
        return f"progress {old.percent}% -> {new.percent}%"
    return None


def never_backwards(
    images: Mapping[str, Sequence[Image]], writes: Mapping[str, ApiWrite]
) -> Finding:
    """Every step between consecutive images moves forwards (see the module docstring)."""
    finding = Finding("nothing moves backwards (every image)", 0)
    retry_by_token = {
        write.token: write
        for write in writes.values()
        if write.answer.action == "retry" and write.token
    }
    for job_id, sequence in images.items():
        for before, after in itertools.pairwise(sequence):
            finding.checked += 1
            a, b = before.job, after.job
            step = f"{job_id} {_brief(a)} -> {_brief(b)}"
            history = b.history[: len(a.history)]
            if len(b.history) < len(a.history) or history != a.history:
                finding.bad.append(f"{step}: history rewritten")
            if b.run < a.run:
                finding.bad.append(f"{step}: run went back")
            elif b.run > a.run:
                problem = _next_run_problem(a, b, after, retry_by_token)
                if problem:
                    finding.bad.append(f"{step}: {problem}")
                else:
                    status = retry_by_token[after.write_token or ""].answer.status
                    finding.noted[f"next run by a retry answered {status}"] += 1
                continue
            if a.status is not b.status and (a.status, b.status) not in STEPS:
                finding.bad.append(f"{step}: not an arrow of the diagram")
            if b.attempts < a.attempts:
                finding.bad.append(f"{step}: attempts went back")
            elif b.attempts == a.attempts and (shrank := _progress_shrank(a, b)):
                finding.bad.append(f"{step}: {shrank}")
    return finding


def _next_run_problem(
    a: Job, b: Job, after: Image, retry_by_token: Mapping[str, ApiWrite]
) -> str | None:
    if a.status not in NEXT_RUN_FROM:
        return f"a new run from {a.status.value}"
    if (b.status, b.run, b.attempts) != (JobStatus.QUEUED, a.run + 1, 0):
        return "a new run that is not the next one, queued with no attempts"
    write = retry_by_token.get(after.write_token or "")
    if write is None or write.answer.job_id != b.id:
        return f"left {a.status.value} without a retry the API made"
    return None


def _brief(job: Job) -> str:
    progress = (
        f" {job.progress.percent:.1f}%#{job.progress.seq}" if job.progress else ""
    )
    return (
        f"[{job.status.value} run={job.run} attempts={job.attempts}"
        f" history={len(job.history)}{progress}]"
    )


def dead_letters_end_their_own_run(
    images: Mapping[str, Sequence[Image]],
    seen: Iterable[DeadLetterSeen],
    runs: Iterable[Run],
) -> Finding:
    """A step into dead_lettered is in the run of a record the consumer was handed, and not under
    a live lease (see the module docstring)."""
    finding = Finding("a dead letter ends only its own run, never a live lease", 0)
    handed = {(s.job_id, s.run) for s in seen}
    handlers: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        handlers.setdefault((run.job_id, run.run), []).append(run)
    for job_id, sequence in images.items():
        for before, after in itertools.pairwise(sequence):
            a, b = before.job, after.job
            if b.status is not JobStatus.DEAD_LETTERED or a.status is b.status:
                continue
            finding.checked += 1
            step = f"{job_id} {_brief(a)} -> {_brief(b)}"
            if (job_id, b.run) not in handed:
                finding.bad.append(f"{step}: no dead letter of run {b.run} was handed")
            if a.status is not JobStatus.RUNNING:
                finding.noted[f"dead-lettered while {a.status.value}"] += 1
                continue
            finding.noted["dead-lettered while running (its lease ended)"] += 1
            at = b.updated_at
            if a.lease_until is not None and a.lease_until >= at:
                finding.bad.append(f"{step}: lease until {a.lease_until} >= {at}")
            moment = at.timestamp()
            live = [
                r
                for r in handlers.get((job_id, b.run), [])
                if r.started <= moment <= r.live_until
            ]
            if live:
                finding.bad.append(
                    f"{step}: attempt {live[0].attempt}'s handler was live"
                )
    return finding


def conflicts_name_refusing_states(
    answers: Iterable[Answer], images: Mapping[str, Sequence[Image]]
) -> Finding:
    """Every 409 of a cancel or retry names a state that refuses it, which the job was in."""
    conflicts = [
        a for a in answers if a.action in ("cancel", "retry") and a.status == 409
    ]
    finding = Finding("409 only for a state that refuses", len(conflicts))
    for answer in conflicts:
        detail = answer.body.get("detail")
        match = NAMED_STATE.search(detail) if isinstance(detail, str) else None
        state = match.group(1) if match else None
        if answer.action == "cancel":
            refuses = state in CANCEL_REFUSED_IN
        else:
            refuses = state in RETRY_REFUSED_IN or bool(
                state and HISTORY_FULL.match(state)
            )
        name = (state or "").split(" ")[0]
        held = {image.job.status.value for image in images.get(answer.job_id or "", [])}
        if not refuses or name not in held:
            finding.bad.append(
                f"{answer.action} {answer.job_id} answered 409 {detail!r}"
                f" (states seen: {sorted(held)})"
            )
        else:
            finding.noted[f"{answer.action}: it is {name}"] += 1
    return finding


def no_error_for_applied_writes(
    writes: Mapping[str, ApiWrite], applied: set[str]
) -> Finding:
    """No API write that was applied answers 5xx or 409 when it could know (see the module
    docstring); the unknowable cases are noted."""
    errors = [
        w
        for w in writes.values()
        if w.answer.status is not None
        and (w.answer.status >= 500 or w.answer.status == 409)
    ]
    finding = Finding("no 5xx or 409 for an applied write", len(errors))
    for write in writes.values():
        if write.answer.status is None and write.token in applied:
            finding.noted[f"{write.answer.action}: applied, its API killed"] += 1
    for write in errors:
        answer = write.answer
        if write.token is None or write.token not in applied:
            continue
        what = f"{answer.action} {answer.job_id} ({answer.call_id})"
        problem, note = _judge(write)
        if problem is not None:
            finding.bad.append(f"{what}: answered {answer.status} {problem}")
        if note is not None:
            finding.noted[f"{answer.action}: {note}"] += 1
    return finding


def _judge(write: ApiWrite) -> tuple[str | None, str | None]:
    """(violation, note) for an API write that answered 5xx or 409 although applied."""
    # The try that applied it is one that reached DynamoDB without its caller seeing the answer:
    # one the injector sent itself (its status known: 200 applied), or one that met a real
    # timeout (its status unknown). The latest of them is the latest it can have been.
    answer = write.answer
    candidates = [
        d
        for d in write.writes
        if d.sent_at is not None and not d.answered and d.server_status in (200, None)
    ]
    stragglers = [
        d for d in candidates if isinstance(d.fault, Late) and d.server_status == 200
    ]
    if stragglers:
        candidates = stragglers  # the one try that applied it
        if all(d.sent_at is not None and d.sent_at > answer.ended for d in stragglers):
            return None, "a straggler applied after its answer"
    if not candidates:
        return "though it saw its write applied", None
    reached = max(d.sent_at for d in candidates if d.sent_at is not None)
    seen_after = [
        d
        for d in write.tries
        if d.answered and d.sent_at is not None and d.sent_at > reached
    ]
    if seen_after:
        first = seen_after[0]
        return (
            f"after {first.call.kind} (answered {first.seen_status}) showed its write"
            f" applied by {candidates[-1].fault!r}",
            None,
        )
    return None, f"{answer.status}, could not know"
