"""The soak's invariant checks can fail: each one, handed what the six causes of issue 22 (and the
other ways of moving backwards) would leave in the stream, the answers and the injector's record,
reports it; handed what a sound run leaves, reports nothing. Pure: no stack, milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobline.models import Attempt, Job, JobError, JobStatus, Progress

from tests.soak.invariants import (
    Answer,
    ApiWrite,
    DeadLetterSeen,
    Image,
    Run,
    conflicts_name_refusing_states,
    dead_letters_end_their_own_run,
    never_backwards,
    no_error_for_applied_writes,
    one_outcome_per_run,
)
from tests.support.faults import (
    Call,
    Decision,
    Late,
    LostResponse,
    Throttle,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
JOB_ID = "job-1"


def job(status: str = "queued", **fields: Any) -> Job:
    values: dict[str, Any] = {
        "id": JOB_ID,
        "owner": "ann",
        "type": "echo",
        "status": JobStatus(status),
        "payload": {},
        "created_at": T0,
        "updated_at": T0,
    }
    return Job.model_validate(values | fields)


def entry(run: int, attempt: int, error: str | None = None) -> Attempt:
    return Attempt(
        attempt=attempt,
        run=run,
        started_at=T0,
        finished_at=T0,
        error=JobError(type=error, message=error) if error else None,
        token=f"lease-{run}-{attempt}",
    )


def stream(*jobs: Job, tokens: dict[int, str] | None = None) -> dict[str, list[Image]]:
    """The images of `jobs` in order (`tokens`: the write token of the n-th image)."""
    return {
        JOB_ID: [
            Image(n + 1, each, (tokens or {}).get(n)) for n, each in enumerate(jobs)
        ]
    }


def retry_write(token: str, status: int = 200) -> dict[str, ApiWrite]:
    """A retry call of the job whose write carried `token`, answered `status`."""
    call = Call(
        "dynamodb.UpdateItem",
        1,
        "inv-1",
        b"",
        {"ExpressionAttributeValues": {":write_token": {"S": token}}},
        "call-1",
    )
    answer = Answer("retry", JOB_ID, status, 0.0, call_id="call-1", ended=1.0)
    decision = Decision(1, 0.5, call, None, None, sent_at=0.5, seen_status=200)
    return {"call-1": ApiWrite(answer, (decision,))}


# ----------------------------------------------------------------------- one outcome per run
def test_two_history_entries_for_one_attempt_are_reported() -> None:
    # Given the stale `failed` write of run 1 landing on run 2 (cause 1): its entry, then run
    # 2's own for the same numbers
    images = stream(
        job("running", run=1, attempts=1),
        job("failed", run=1, attempts=1, history=(entry(1, 1, "HttpStatusError"),)),
        job(
            "succeeded",
            run=1,
            attempts=1,
            history=(entry(1, 1, "HttpStatusError"), entry(1, 1)),
        ),
    )

    # Then one outcome per run reports both the doubled entry and the second outcome
    finding = one_outcome_per_run(images)
    assert len(finding.bad) == 2, finding.bad


def test_one_outcome_per_run_accepts_a_retried_job() -> None:
    first = (entry(1, 1, "PermanentJobError"),)
    images = stream(
        job("running", run=1, attempts=1),
        job("failed", run=1, attempts=1, history=first),
        job("queued", run=2, attempts=0, history=first),
        job("running", run=2, attempts=1, history=first),
        job("succeeded", run=2, attempts=1, history=(*first, entry(2, 1))),
    )
    assert one_outcome_per_run(images).bad == []


# ---------------------------------------------------------------------- never backwards
def test_a_final_job_queued_again_without_a_retry_is_reported() -> None:
    history = (entry(1, 1, "Boom"),)
    images = stream(
        job("failed", run=1, attempts=1, history=history),
        job("queued", run=2, attempts=0, history=history),
        tokens={1: "nobody's"},
    )
    finding = never_backwards(images, retry_write("the retry's"))
    assert [line.split(": ")[-1] for line in finding.bad] == [
        "left failed without a retry the API made"
    ]


def test_a_retry_the_api_made_starts_the_next_run() -> None:
    history = (entry(1, 1, "Boom"),)
    images = stream(
        job("failed", run=1, attempts=1, history=history),
        job("queued", run=2, attempts=0, history=history),
        tokens={1: "the retry's"},
    )
    finding = never_backwards(images, retry_write("the retry's"))
    assert finding.bad == []
    assert finding.noted == {"next run by a retry answered 200": 1}


def test_a_stale_outcome_moving_a_final_job_is_reported() -> None:
    images = stream(
        job("succeeded", run=1, attempts=1, history=(entry(1, 1),)),
        job("failed", run=1, attempts=1, history=(entry(1, 1),)),
    )
    finding = never_backwards(images, {})
    assert [line.split(": ")[-1] for line in finding.bad] == [
        "not an arrow of the diagram"
    ]


def test_progress_going_back_within_an_attempt_is_reported() -> None:
    # Given a resend of an older progress report landing after a newer one (cause 5)
    def at(percent: float, seq: int) -> Progress:
        return Progress(percent=percent, updated_at=T0, seq=seq)

    images = stream(
        job("running", run=1, attempts=1, progress=at(12.6, 1)),
        job("running", run=1, attempts=1, progress=at(47.5, 2)),
        job("running", run=1, attempts=1, progress=at(12.6, 1)),
        job("queued", run=1, attempts=1),
    )
    finding = never_backwards(images, {})
    assert [line.split(": ")[-1] for line in finding.bad] == [
        "progress seq 2 -> 1",
        "progress 12.6% (seq 1) went away",
    ]


def test_attempts_and_history_going_back_are_reported() -> None:
    images = stream(
        job("running", run=1, attempts=2, history=(entry(1, 1, "Lost"),)),
        job("running", run=1, attempts=1),
    )
    finding = never_backwards(images, {})
    assert sorted(line.split(": ")[-1] for line in finding.bad) == [
        "attempts went back",
        "history rewritten",
    ]


# ----------------------------------------------------------------------------- dead letters
def running(lease_until: datetime, run: int = 1) -> Job:
    return job("running", run=run, attempts=1, lease_until=lease_until)


def dead_lettered(at: datetime, run: int = 1) -> Job:
    return job("dead_lettered", run=run, attempts=1, updated_at=at)


def test_a_dead_letter_of_another_run_is_reported() -> None:
    # Given a dead letter of run 1 (before a retry) ending run 2 (cause 3)
    at = T0 + timedelta(seconds=30)
    images = stream(running(T0, run=2), dead_lettered(at, run=2))
    seen = [DeadLetterSeen(JOB_ID, 1, at.timestamp())]
    finding = dead_letters_end_their_own_run(images, seen, [])
    assert [line.split(": ")[-1] for line in finding.bad] == [
        "no dead letter of run 2 was handed"
    ]


def test_a_dead_letter_under_a_live_lease_is_reported() -> None:
    # Given a copy of a running job's message dead-lettering it (cause 2): its lease, and its
    # handler, still live
    at = T0 + timedelta(seconds=5)
    images = stream(running(T0 + timedelta(seconds=10)), dead_lettered(at))
    seen = [DeadLetterSeen(JOB_ID, 1, at.timestamp())]
    live = Run(
        JOB_ID, 1, 1, T0.timestamp(), at.timestamp() + 1, at.timestamp() + 9, True
    )
    finding = dead_letters_end_their_own_run(images, seen, [live])
    assert len(finding.bad) == 2, finding.bad


def test_a_dead_letter_after_the_lease_ended_is_its_runs() -> None:
    at = T0 + timedelta(seconds=30)
    images = stream(running(T0 + timedelta(seconds=10)), dead_lettered(at))
    seen = [DeadLetterSeen(JOB_ID, 1, at.timestamp())]
    ended = Run(
        JOB_ID, 1, 1, T0.timestamp(), T0.timestamp() + 60, T0.timestamp() + 4, False
    )
    finding = dead_letters_end_their_own_run(images, seen, [ended])
    assert finding.bad == []
    assert finding.checked == 1


# -------------------------------------------------------------------------------------- 409
def conflict(action: str, state: str) -> Answer:
    detail = f"cannot {action} job {JOB_ID!r}: it is {state}"
    return Answer(action, JOB_ID, 409, 0.0, body={"detail": detail})


def test_a_409_for_a_state_that_allows_the_action_is_reported() -> None:
    # Given cancel racing a requeue answering "it is queued" (cause 4)
    images = stream(job("running"), job("queued"), job("failed"))
    answers = [
        conflict("cancel", "queued"),
        conflict("cancel", "failed"),
        conflict("retry", "failed after 10 attempts"),
        conflict("retry", "failed"),
    ]
    finding = conflicts_name_refusing_states(answers, images)
    assert [line.split(" answered ")[1] for line in finding.bad] == [
        f"409 \"cannot cancel job '{JOB_ID}': it is queued\" (states seen: "
        "['failed', 'queued', 'running'])",
        f"409 \"cannot retry job '{JOB_ID}': it is failed\" (states seen: "
        "['failed', 'queued', 'running'])",
    ]


# ------------------------------------------------------------------------- applied writes
def put(seq: int, at: float, fault: Any = None, **fields: Any) -> Decision:
    call = Call(
        "dynamodb.PutItem",
        seq,
        "inv-1",
        b"",
        {"Item": {"write_token": {"S": "submit-token"}}},
        "call-7",
    )
    return Decision(seq, at, call, fault, "random" if fault else None, **fields)


def submit_answered(status: int, *tries: Decision) -> dict[str, ApiWrite]:
    answer = Answer("submit", JOB_ID, status, 0.0, call_id="call-7", ended=10.0)
    return {"call-7": ApiWrite(answer, tries)}


def test_a_503_after_seeing_its_own_write_is_reported() -> None:
    # Given a submit whose first try was applied, its answer lost, and whose second try met the
    # job (a worker had written to it since) and still answered 503 (cause 6)
    writes = submit_answered(
        503,
        put(1, 1.0, LostResponse(), sent_at=1.0, server_status=200, seen_status=500),
        put(2, 2.0, sent_at=2.0, seen_status=400),
    )
    finding = no_error_for_applied_writes(writes, {"submit-token"})
    assert len(finding.bad) == 1, finding.bad
    assert finding.bad[0].startswith(f"submit {JOB_ID} (call-7): answered 503 after")


def test_a_503_that_could_not_know_is_noted() -> None:
    writes = submit_answered(
        503,
        put(1, 1.0, LostResponse(), sent_at=1.0, server_status=200, seen_status=500),
        put(2, 2.0, Throttle(), seen_status=400),
        put(3, 3.0, Throttle(), seen_status=400),
    )
    finding = no_error_for_applied_writes(writes, {"submit-token"})
    assert finding.bad == []
    assert finding.noted == {"submit: 503, could not know": 1}


def test_a_straggler_applied_after_the_answer_is_noted() -> None:
    writes = submit_answered(
        503,
        put(1, 1.0, Late(), sent_at=12.0, server_status=200, seen_error="Timeout"),
        put(2, 2.0, Throttle(), seen_status=400),
        put(3, 3.0, Throttle(), seen_status=400),
    )
    finding = no_error_for_applied_writes(writes, {"submit-token"})
    assert finding.bad == []
    assert finding.noted == {"submit: a straggler applied after its answer": 1}


def test_an_error_for_a_write_that_was_not_applied_is_fine() -> None:
    writes = submit_answered(503, put(1, 1.0, Throttle(), seen_status=400))
    assert no_error_for_applied_writes(writes, set()).bad == []
