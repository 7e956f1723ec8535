"""The state machine, pure: every (state, event) pair, the change each allowed transition makes,
and the rules that keep it in one place (typed updates, no construction elsewhere)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jobline import creation, lifecycle
from jobline.limits import MAX_CONTROL_TOKENS
from jobline.models import (
    Attempt,
    Checkpoint,
    Job,
    JobError,
    JobStatus,
    Progress,
    SubmitRequest,
)
from jobline.transition import (
    KEEP,
    Ending,
    Event,
    JobUpdate,
    Lease,
    Transition,
    TransitionRefused,
    apply,
    finished_attempt,
    lost_attempt,
)

from tests.support.jobfields import FINAL_STATUSES

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=2)
LEASE = Lease(id="lease-new", until=NOW + timedelta(minutes=15), request_id="req-new")
ERROR = JobError(type="Boom", message="it failed")
PROGRESS = Progress(percent=50, message="half", updated_at=NOW)
ENTRY = Attempt(attempt=1, started_at=NOW - timedelta(seconds=5), finished_at=NOW)
ENDING = Ending(NOW, ENTRY, PROGRESS)
RUN_AFTER = NOW + timedelta(seconds=30)
CHECKPOINT = Checkpoint(state={"done": 7}, seq=3, saved_at=NOW)


def job_in(status: JobStatus, **fields: Any) -> Job:
    """A job of `ann` in `status` after one attempt (two left); a running one's lease ended."""
    values: dict[str, Any] = {
        "id": "a" * 32,
        "owner": "ann",
        "type": "echo",
        "status": status,
        "payload": {"n": 1},
        "attempts": 1,
        "max_attempts": 3,
        "created_at": NOW - timedelta(minutes=10),
        "updated_at": NOW - timedelta(minutes=5),
        "started_at": NOW - timedelta(minutes=5),
        "lease_until": NOW - timedelta(minutes=1)
        if status is JobStatus.RUNNING
        else None,
        "attempt_request_id": "req-old" if status is JobStatus.RUNNING else None,
        "lease_id": "lease-old" if status is JobStatus.RUNNING else None,
        **fields,
    }
    return Job.model_validate(values)


MAKE: dict[Event, tuple[Callable[[Job], Transition], JobStatus]] = {
    Event.CLAIM: (
        lambda job: lifecycle.claim(job.owner, NOW, LEASE, job.run),
        JobStatus.RUNNING,
    ),
    Event.RECLAIM: (lambda job: lifecycle.reclaim(job, NOW, LEASE), JobStatus.RUNNING),
    Event.SUCCEED: (
        lambda job: lifecycle.succeed(job, ENDING, {"ok": True}, RETENTION),
        JobStatus.SUCCEEDED,
    ),
    Event.REQUEUE: (
        lambda job: lifecycle.requeue(job, ENDING, ERROR, RUN_AFTER),
        JobStatus.QUEUED,
    ),
    Event.FAIL: (
        lambda job: lifecycle.fail(job, ENDING, ERROR, RETENTION),
        JobStatus.FAILED,
    ),
    Event.CANCEL_AT_CHECKPOINT: (
        lambda job: lifecycle.cancel_at_checkpoint(job, ENDING, ERROR, RETENTION),
        JobStatus.CANCELLED,
    ),
    Event.FAIL_EXHAUSTED: (
        lambda job: lifecycle.fail_exhausted(job, NOW, RETENTION),
        JobStatus.FAILED,
    ),
    Event.REPORT_PROGRESS: (
        lambda job: lifecycle.report_progress(job, PROGRESS),
        JobStatus.RUNNING,
    ),
    Event.CANCEL_QUEUED: (
        lambda job: lifecycle.cancel_queued(job, NOW, RETENTION, "token-cancel"),
        JobStatus.CANCELLED,
    ),
    Event.REQUEST_CANCEL: (
        lambda job: lifecycle.request_cancel(job, NOW, "token-cancel"),
        JobStatus.RUNNING,
    ),
    Event.DEAD_LETTER: (
        lambda job: lifecycle.dead_letter(job, NOW, 25, RETENTION),
        JobStatus.DEAD_LETTERED,
    ),
    Event.RESET_FOR_RETRY: (
        lambda job: lifecycle.reset_for_retry(job, NOW, "token-retry"),
        JobStatus.QUEUED,
    ),
    Event.SAVE_CHECKPOINT: (
        lambda job: lifecycle.save_checkpoint(job, CHECKPOINT),
        JobStatus.RUNNING,
    ),
    Event.CONTINUE: (
        lambda job: lifecycle.continue_(job, NOW, CHECKPOINT, PROGRESS),
        JobStatus.RUNNING,
    ),
    Event.RESUME: (
        lambda job: lifecycle.resume(job, NOW, LEASE),
        JobStatus.RUNNING,
    ),
}
EVENT_FIELDS: dict[Event, dict[str, Any]] = {
    Event.RESUME: {"continue_at": NOW - timedelta(seconds=1)},
}
"""What a job must also be for the event to leave from its state (a resumed attempt continues)."""


def job_for(event: Event, status: JobStatus, **fields: Any) -> Job:
    """A job in `status` as `event` finds it (`job_in`, with the event's own fields)."""
    return job_in(status, **{**EVENT_FIELDS.get(event, {}), **fields})


def test_every_event_has_a_transition_and_its_allowed_states() -> None:
    assert set(MAKE) == set(Event) == set(lifecycle.ALLOWED)


@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize("event", list(Event))
def test_every_state_event_pair_is_allowed_or_refused(
    event: Event, status: JobStatus
) -> None:
    # Given a stored job in `status`
    job = job_for(event, status)
    make, target = MAKE[event]

    # When the event's transition is built for it
    try:
        transition = make(job)
    except TransitionRefused as refused:
        # Then a refusal happens only for a state the event does not leave from
        assert status not in lifecycle.ALLOWED[event]
        assert (refused.event, refused.status) == (event, status)
        return

    # Then an allowed pair gives a write its precondition admits, ending in the target state;
    # any other pair is refused by the precondition (the write would not apply)
    assert transition.event is event
    allowed = status in lifecycle.ALLOWED[event]
    assert transition.precondition.admits(job) is allowed
    if allowed:
        assert apply(job, transition.update).status is target


def _after(event: Event, status: JobStatus, **fields: Any) -> tuple[Job, Job]:
    job = job_for(event, status, **fields)
    transition = MAKE[event][0](job)
    assert transition.precondition.admits(job)
    return job, apply(job, transition.update)


def test_claim_starts_the_next_attempt_under_the_lease() -> None:
    _, after = _after(Event.CLAIM, JobStatus.QUEUED, run_after=NOW, progress=PROGRESS)
    assert (after.attempts, after.started_at, after.updated_at) == (2, NOW, NOW)
    assert (after.lease_until, after.attempt_request_id) == (LEASE.until, "req-new")
    assert (after.progress, after.run_after, after.history) == (None, NOW, ())


def test_claim_refuses_a_job_without_attempts_left() -> None:
    exhausted = job_in(JobStatus.QUEUED, attempts=3)
    assert not lifecycle.claim("ann", NOW, LEASE, 1).precondition.admits(exhausted)


def test_reclaim_records_the_lost_attempt_in_the_same_write() -> None:
    job, after = _after(Event.RECLAIM, JobStatus.RUNNING)
    assert after.attempts == 2
    assert after.history == (lost_attempt(job),)
    [lost] = after.history
    assert (lost.attempt, lost.finished_at, lost.request_id) == (1, None, "req-old")
    assert lost.error is not None and lost.error.type == "WorkerLost"


@pytest.mark.parametrize(
    "lease_until", [NOW, NOW + timedelta(seconds=1)], ids=["ends-now", "live"]
)
def test_reclaim_refuses_a_live_lease(lease_until: datetime) -> None:
    held = job_in(JobStatus.RUNNING, lease_until=lease_until)
    assert not lifecycle.reclaim(held, NOW, LEASE).precondition.admits(held)


def test_outcomes_release_the_lease_and_append_the_entry() -> None:
    for event in (Event.SUCCEED, Event.FAIL, Event.CANCEL_AT_CHECKPOINT, Event.REQUEUE):
        _, after = _after(event, JobStatus.RUNNING, result={"old": 1})
        assert (after.lease_until, after.attempt_request_id) == (None, None)
        assert (after.history, after.progress, after.updated_at) == (
            (ENTRY,),
            PROGRESS,
            NOW,
        )


def test_final_outcomes_set_the_expiry_and_requeue_keeps_the_job_live() -> None:
    expires = int((NOW + RETENTION).timestamp())
    _, succeeded = _after(Event.SUCCEED, JobStatus.RUNNING)
    assert (succeeded.result, succeeded.error) == ({"ok": True}, None)
    assert (succeeded.finished_at, succeeded.expires_at) == (NOW, expires)
    for event in (Event.FAIL, Event.CANCEL_AT_CHECKPOINT):
        _, ended = _after(event, JobStatus.RUNNING, result={"old": 1})
        assert (ended.result, ended.error, ended.expires_at) == (None, ERROR, expires)
    _, queued = _after(Event.REQUEUE, JobStatus.RUNNING, result={"old": 1})
    assert (queued.error, queued.run_after, queued.result) == (
        ERROR,
        RUN_AFTER,
        {"old": 1},
    )
    assert (queued.finished_at, queued.expires_at) == (None, None)


def test_requeue_refuses_the_last_attempt() -> None:
    last = job_in(JobStatus.RUNNING, attempts=3)
    with pytest.raises(TransitionRefused):
        lifecycle.requeue(last, ENDING, ERROR, RUN_AFTER)


def test_platform_failures_record_a_running_attempt_as_lost() -> None:
    for event in (Event.FAIL_EXHAUSTED, Event.DEAD_LETTER):
        running, from_running = _after(event, JobStatus.RUNNING)
        _, from_queued = _after(event, JobStatus.QUEUED)
        assert from_running.history == (lost_attempt(running),)
        assert from_queued.history == ()
        assert from_running.lease_until is None


def test_dead_letter_keeps_the_last_error_or_names_the_receive_count() -> None:
    _, kept = _after(Event.DEAD_LETTER, JobStatus.QUEUED, error=ERROR)
    _, named = _after(Event.DEAD_LETTER, JobStatus.QUEUED)
    assert kept.error == ERROR
    assert named.error == JobError(
        type="DeadLettered", message="the message was dead-lettered after 25 receives"
    )


def test_reset_for_retry_gives_a_fresh_budget_and_keeps_history() -> None:
    _, after = _after(
        Event.RESET_FOR_RETRY,
        JobStatus.CANCELLED,
        history=(ENTRY,),
        error=ERROR,
        expires_at=1,
        cancel_requested_at=NOW,
        finished_at=NOW,
    )
    assert (after.attempts, after.run_after, after.history) == (0, NOW, (ENTRY,))
    assert (after.error, after.expires_at, after.cancel_requested_at) == (
        None,
        None,
        None,
    )
    assert after.finished_at is None


def test_writes_on_a_read_job_expect_its_state_and_attempts() -> None:
    # A stale writer (another attempt, a retried job) loses instead of moving the job back
    for event in set(Event) - {Event.CLAIM, Event.CANCEL_QUEUED}:
        status = next(iter(sorted(lifecycle.ALLOWED[event])))
        job = job_for(event, status)
        transition = MAKE[event][0](job)
        stale = job.model_copy(update={"attempts": job.attempts + 1})
        if event is not Event.REQUEST_CANCEL:
            assert not transition.precondition.admits(stale), event


def test_only_retry_leaves_a_final_state() -> None:
    for event, states in lifecycle.ALLOWED.items():
        if any(status in FINAL_STATUSES for status in states):
            assert event is Event.RESET_FOR_RETRY


def test_an_unknown_field_is_a_type_error_not_a_silent_write() -> None:
    # (mypy --strict rejects this line too: that is the point; the ignore keeps the suite typed)
    with pytest.raises(TypeError):
        JobUpdate(**{"stauts": JobStatus.FAILED})  # type: ignore[arg-type]


def test_updates_and_preconditions_are_built_only_in_the_lifecycle() -> None:
    construction = re.compile(r"\b(JobUpdate|Precondition)\(")
    builders = {"lifecycle.py", "transition.py"}
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("shared", "functions")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name not in builders
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if construction.search(line) and not line.lstrip().startswith(("#", "class "))
    ]
    assert found == []


def test_new_jobs_enter_the_machine_queued_or_rejected() -> None:
    request = SubmitRequest(type="echo", payload={"a": 1}, delay_seconds=30)
    job = creation.submitted("b" * 32, "ann", request, "hash", NOW)
    assert (job.status, job.attempts, job.run_after) == (
        JobStatus.QUEUED,
        0,
        NOW + timedelta(seconds=30),
    )
    rejected = creation.rejected("c" * 32, "ann", "x", None, ERROR, NOW, RETENTION)
    assert rejected.status is JobStatus.REJECTED and rejected.status in FINAL_STATUSES
    assert rejected.expires_at == int((NOW + RETENTION).timestamp())


# ------------------------------------------------------------------------------ outbox
def test_only_submit_retry_and_continue_ask_for_a_message() -> None:
    request = SubmitRequest(type="echo", payload={})
    assert lifecycle.needs_message(
        creation.submitted("d" * 32, "ann", request, "h", NOW)
    )
    _, retried = _after(Event.RESET_FOR_RETRY, JobStatus.FAILED)
    assert lifecycle.needs_message(retried)
    assert retried.dispatch == lifecycle.dispatch_mark(NOW)
    # A continuing attempt asks for the message of its next invocation, in the same write
    _, continuing = _after(Event.CONTINUE, JobStatus.RUNNING)
    assert lifecycle.needs_message(continuing)
    assert (continuing.status, continuing.continue_at) == (JobStatus.RUNNING, NOW)
    # and no other arrow sets it
    for event in set(Event) - {Event.RESET_FOR_RETRY, Event.CONTINUE}:
        job = job_for(event, sorted(lifecycle.ALLOWED[event])[0])
        assert MAKE[event][0](job).update.dispatch in (KEEP, None), event


def test_every_arrow_out_of_queued_removes_the_dispatch_mark() -> None:
    for event, states in lifecycle.ALLOWED.items():
        if JobStatus.QUEUED not in states:
            continue
        _, after = _after(event, JobStatus.QUEUED, dispatch=7)
        assert after.dispatch is None, event


def test_a_claim_waits_until_the_job_is_due() -> None:
    claim = lifecycle.claim("ann", NOW, LEASE, 1).precondition
    assert claim.admits(job_in(JobStatus.QUEUED, run_after=NOW))
    assert claim.admits(job_in(JobStatus.QUEUED, run_after=None))
    assert not claim.admits(
        job_in(JobStatus.QUEUED, run_after=NOW + timedelta(microseconds=1))
    )


# ------------------------------------------------------------------------------- fences
def test_a_write_for_another_run_is_refused_for_every_transition() -> None:
    # A stale writer of an earlier incarnation (a resend held past a retry, a message or a dead
    # letter of the previous run) never lands on the job's next run
    for event in Event:
        for status in sorted(lifecycle.ALLOWED[event]):
            job = job_for(event, status, run=3)
            transition = MAKE[event][0](job)
            assert transition.precondition.admits(job), (event, status)
            for other in (2, 4):
                later = job.model_copy(update={"run": other})
                assert not transition.precondition.admits(later), (event, status, other)


def test_a_write_of_another_claim_is_refused_for_every_transition_of_a_running_job() -> (
    None
):
    # The ABA on attempts: the same state and attempt number, but a later claim's (the job was
    # retried and claimed again, or reclaimed): an earlier claim's write is refused
    any_attempt_of_the_run = {Event.REQUEST_CANCEL}
    for event in Event:
        if JobStatus.RUNNING not in lifecycle.ALLOWED[event]:
            continue
        job = job_for(event, JobStatus.RUNNING)
        transition = MAKE[event][0](job)
        reclaimed = job.model_copy(update={"lease_id": "lease-later"})
        refused = not transition.precondition.admits(reclaimed)
        assert refused is (event not in any_attempt_of_the_run), event


def test_a_claim_for_another_run_is_refused_and_one_without_a_run_is_not_fenced() -> (
    None
):
    queued = job_in(JobStatus.QUEUED, run=2, run_after=NOW)
    assert lifecycle.claim("ann", NOW, LEASE, 2).precondition.admits(queued)
    assert not lifecycle.claim("ann", NOW, LEASE, 1).precondition.admits(queued)
    # A message sent before runs were numbered claims whatever run is queued
    assert lifecycle.claim("ann", NOW, LEASE, None).precondition.admits(queued)


def test_the_claim_records_its_lease_id_and_every_outcome_releases_it() -> None:
    _, claimed = _after(Event.CLAIM, JobStatus.QUEUED, run_after=NOW)
    assert claimed.lease_id == LEASE.id
    _, reclaimed = _after(Event.RECLAIM, JobStatus.RUNNING)
    assert reclaimed.lease_id == LEASE.id
    for event in (
        Event.SUCCEED,
        Event.FAIL,
        Event.REQUEUE,
        Event.CANCEL_AT_CHECKPOINT,
        Event.FAIL_EXHAUSTED,
        Event.DEAD_LETTER,
    ):
        _, after = _after(event, JobStatus.RUNNING)
        assert after.lease_id is None, event


def test_an_older_progress_report_never_replaces_a_newer_one() -> None:
    stored = job_in(
        JobStatus.RUNNING,
        progress=Progress(percent=47.5, updated_at=NOW, seq=5),
    )
    older = Progress(percent=12.6, updated_at=NOW - timedelta(seconds=2), seq=4)
    newer = Progress(percent=60, updated_at=NOW, seq=6)
    assert not lifecycle.report_progress(stored, older).precondition.admits(stored)
    assert not lifecycle.report_progress(
        stored, older.model_copy(update={"seq": 5})
    ).precondition.admits(stored)
    assert lifecycle.report_progress(stored, newer).precondition.admits(stored)
    # The first report of an attempt (none stored) is written
    fresh = job_in(JobStatus.RUNNING)
    assert lifecycle.report_progress(fresh, older).precondition.admits(fresh)


def test_a_running_job_is_dead_lettered_only_once_its_lease_has_ended() -> None:
    live = job_in(JobStatus.RUNNING, lease_until=NOW + timedelta(seconds=30))
    ended = job_in(JobStatus.RUNNING, lease_until=NOW - timedelta(seconds=1))
    assert not lifecycle.dead_letter(live, NOW, 25, RETENTION).precondition.admits(live)
    assert lifecycle.dead_letter(ended, NOW, 25, RETENTION).precondition.admits(ended)


def test_a_retry_starts_the_next_run_and_api_writes_keep_their_latest_tokens() -> None:
    job = job_in(
        JobStatus.FAILED, run=4, control_tokens=tuple(f"t{i}" for i in range(8))
    )
    after = apply(job, lifecycle.reset_for_retry(job, NOW, "t-new").update)
    assert after.run == 5
    assert after.control_tokens == (*(f"t{i}" for i in range(1, 8)), "t-new")
    assert len(after.control_tokens) == MAX_CONTROL_TOKENS
    cancel = lifecycle.cancel_queued(after, NOW, RETENTION, "t-cancel")
    assert apply(after, cancel.update).control_tokens[-1] == "t-cancel"


def test_an_attempts_history_entry_carries_its_run_and_its_claims_token() -> None:
    job = job_in(JobStatus.RUNNING, run=2)
    entry = finished_attempt(job, NOW, None, "req-1", 5)
    assert (entry.run, entry.attempt, entry.token) == (2, 1, "lease-old")
    lost = lost_attempt(job)
    assert (lost.run, lost.attempt, lost.token) == (2, 1, None)


# ------------------------------------------------------------------- long jobs (issue 16.5)
def test_a_continuation_keeps_the_attempt_and_its_progress_and_ends_the_invocations_lease() -> (
    None
):
    job, after = _after(Event.CONTINUE, JobStatus.RUNNING, attempts=2)
    assert (after.status, after.attempts, after.history) == (JobStatus.RUNNING, 2, ())
    assert (after.checkpoint, after.progress) == (CHECKPOINT, PROGRESS)
    assert after.lease_until == NOW and after.lease_id == job.lease_id
    # The next invocation resumes it (not a reclaim: no lost attempt, no new one)
    assert not lifecycle.reclaim(
        after, NOW + timedelta(seconds=1), LEASE
    ).precondition.admits(after)
    resume = lifecycle.resume(after, NOW + timedelta(seconds=1), LEASE)
    assert resume.precondition.admits(after)
    resumed = apply(after, resume.update)
    assert (resumed.attempts, resumed.history, resumed.progress) == (2, (), PROGRESS)
    assert (resumed.lease_id, resumed.continue_at, resumed.dispatch) == (
        LEASE.id,
        None,
        None,
    )
    assert (
        resumed.started_at == job.started_at
    )  # the attempt's start: max_runtime_s counts from it
    # A second resume (a duplicate message) is refused: the attempt is another lease's now
    assert not resume.precondition.admits(resumed)


def test_an_older_checkpoint_never_replaces_a_newer_one() -> None:
    stored = job_in(JobStatus.RUNNING, checkpoint=CHECKPOINT)
    older = CHECKPOINT.model_copy(update={"seq": 2, "state": {"done": 5}})
    newer = CHECKPOINT.model_copy(update={"seq": 4, "state": {"done": 8}})
    assert not lifecycle.save_checkpoint(stored, older).precondition.admits(stored)
    assert not lifecycle.save_checkpoint(stored, CHECKPOINT).precondition.admits(stored)
    assert lifecycle.save_checkpoint(stored, newer).precondition.admits(stored)


def test_a_retry_starts_its_run_without_the_saved_state() -> None:
    _, retried = _after(Event.RESET_FOR_RETRY, JobStatus.FAILED, checkpoint=CHECKPOINT)
    assert (retried.checkpoint, retried.continue_at) == (None, None)
