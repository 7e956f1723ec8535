"""Issue 16.5 over in-memory fakes: a type's `timeout_s` picks its lane and bounds its attempt;
a handler saves its place (`context.checkpoint`) and goes on in a new invocation (`Continue`),
which resumes the same attempt with its state and progress, within `max_runtime_s`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from jobline.errors import InvalidJobTypeDeclaration
from jobline.lanes import Lane, Lanes, refuse_unfit
from jobline.models import JobStatus, SubmitRequest
from jobline.registry import Continue, JobContext, JobType
from jobline.service import RunOutcome

from tests.support.builders import ANN, WorkerCrash, delivery_of
from tests.support.fakes import AnyInput, FakeClock
from tests.support.services import build_fake_service, build_registry

LANES = Lanes(worker_timeout_s=120, long_worker_timeout_s=900, margin_s=12)


def a_type(name: str, handler: Any, **fields: Any) -> JobType[AnyInput]:
    return JobType(
        name=name,
        description=f"test type {name}",
        input_model=AnyInput,
        handler=handler,
        **fields,
    )


def test_the_lane_is_the_first_whose_budget_holds_the_attempt() -> None:
    assert LANES.lane_for(60) is Lane.DEFAULT
    assert LANES.lane_for(108) is Lane.DEFAULT
    assert LANES.lane_for(109) is Lane.LONG
    assert LANES.lane_for(888) is Lane.LONG
    assert LANES.lane_for(889) is None
    no_long = Lanes(worker_timeout_s=120, long_worker_timeout_s=None, margin_s=12)
    assert no_long.lane_for(600) is None


def test_a_type_that_fits_no_lane_is_refused_when_registered_naming_the_budgets() -> (
    None
):
    fits = a_type("fits", lambda p, c: {}, timeout_s=600)
    too_long = a_type("too-long", lambda p, c: {}, timeout_s=900)
    refuse_unfit([fits], LANES)
    with pytest.raises(InvalidJobTypeDeclaration) as refused:
        refuse_unfit([fits, too_long], LANES)
    assert refused.value.job_type == "too-long"
    assert "default 108 s, long 888 s" in refused.value.message


@pytest.mark.parametrize(
    "fields",
    [{"timeout_s": 0}, {"timeout_s": 901}, {"timeout_s": 60, "max_runtime_s": 30}],
)
def test_impossible_times_are_refused_when_declared(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidJobTypeDeclaration):
        a_type("bad", lambda p, c: {}, **fields)


def test_a_job_goes_to_its_types_lane() -> None:
    # Given a type whose attempts need 10 minutes, and one that needs a minute
    registry = build_registry(
        [
            a_type("long", lambda p, c: {}, timeout_s=600),
            a_type("short", lambda p, c: {}, timeout_s=60),
        ]
    )
    service, _, queue = build_fake_service(registry)

    # When a job of each is submitted
    long_job = service.submit(ANN, SubmitRequest(type="long")).job
    short_job = service.submit(ANN, SubmitRequest(type="short")).job

    # Then each job and its message are on its type's lane
    assert (long_job.lane, short_job.lane) == ("long", "default")
    assert [(s.message.job_id, s.lane) for s in queue.sent] == [
        (long_job.id, "long"),
        (short_job.id, "default"),
    ]


def test_an_attempt_stops_at_its_types_timeout_before_the_invocations_deadline() -> (
    None
):
    # Given a handler that waits for the stop, in a type allowing one second
    def waits(payload: AnyInput, context: JobContext) -> Any:
        context.stop_event.wait(30)
        return {}

    service, repo, _ = build_fake_service(
        build_registry([a_type("slow", waits, timeout_s=1)])
    )
    job = service.submit(ANN, SubmitRequest(type="slow")).job

    # When an invocation with a minute left runs it
    outcome = service.run(delivery_of(job))

    # Then the attempt ended at the type's second: a retryable timeout
    assert outcome is RunOutcome.REDELIVER
    [stored] = repo.jobs
    assert stored.error is not None and stored.error.type == "DeadlineExceeded"


def test_a_continuing_job_resumes_its_attempt_with_its_state_and_progress() -> None:
    # Given a handler that counts to 3, one step per invocation
    seen: list[Any] = []

    def counts(payload: AnyInput, context: JobContext) -> Any:
        seen.append((context.attempt, context.state))
        done = (context.state or {"done": 0})["done"] + 1
        context.report_progress(100 * done / 3, f"{done}/3")
        if done < 3:
            return Continue({"done": done})
        return {"done": done}

    clock = FakeClock()
    service, repo, queue = build_fake_service(
        build_registry([a_type("count3", counts, max_runtime_s=3600)]),
        clock=clock,
        progress_interval_s=0.1,
    )
    job = service.submit(ANN, SubmitRequest(type="count3")).job

    # When its first invocation runs, it continues: still running, its state saved, its
    # message deleted and a new one sent for the next invocation
    assert service.run(delivery_of(job, request_id="req-1")) is RunOutcome.DONE
    [between] = repo.jobs
    assert (between.status, between.attempts, between.history) == (
        JobStatus.RUNNING,
        1,
        (),
    )
    assert between.checkpoint is not None and between.checkpoint.state == {"done": 1}
    assert between.continue_at is not None
    assert [s.message.job_id for s in queue.sent] == [job.id, job.id]

    # When the next invocations run from the new messages
    assert service.run(delivery_of(between, request_id="req-2")) is RunOutcome.DONE
    [again] = repo.jobs
    assert again.progress is not None and again.progress.message == "2/3"
    assert service.run(delivery_of(again, request_id="req-3")) is RunOutcome.DONE

    # Then the one attempt went on from where it was, and ended once
    assert seen == [(1, None), (1, {"done": 1}), (1, {"done": 2})]
    [done] = repo.jobs
    assert (done.status, done.result, done.attempts) == (
        JobStatus.SUCCEEDED,
        {"done": 3},
        1,
    )
    assert len(done.history) == 1 and done.history[0].request_id == "req-3"
    assert done.progress is not None and done.progress.message == "3/3"


def test_a_duplicate_of_the_continuation_message_resumes_once() -> None:
    calls: list[int] = []

    def once_then_done(payload: AnyInput, context: JobContext) -> Any:
        calls.append(context.attempt)
        if context.state is None:
            return Continue({"step": 1})
        return {"ok": True}

    service, repo, _ = build_fake_service(
        build_registry([a_type("twice", once_then_done, max_runtime_s=3600)])
    )
    job = service.submit(ANN, SubmitRequest(type="twice")).job
    service.run(delivery_of(job))
    [between] = repo.jobs

    # When the next invocation's message arrives twice, the second after the first finished
    assert service.run(delivery_of(between)) is RunOutcome.DONE
    assert service.run(delivery_of(between)) is RunOutcome.DONE

    # Then the handler ran once per invocation: no second resume of a finished job
    assert calls == [1, 1]
    assert repo.jobs[0].status is JobStatus.SUCCEEDED


def test_a_type_without_max_runtime_cannot_continue() -> None:
    service, repo, _ = build_fake_service(
        build_registry([a_type("nomax", lambda p, c: Continue({"x": 1}))])
    )
    job = service.submit(ANN, SubmitRequest(type="nomax")).job
    assert service.run(delivery_of(job)) is RunOutcome.DONE
    [failed] = repo.jobs
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and "max_runtime_s" in failed.error.message


def test_an_attempt_past_its_max_runtime_fails() -> None:
    # Given a handler that always continues, in a type allowing an hour across invocations
    clock = FakeClock()
    service, repo, _ = build_fake_service(
        build_registry(
            [a_type("forever", lambda p, c: Continue({}), max_runtime_s=3600)]
        ),
        clock=clock,
    )
    job = service.submit(ANN, SubmitRequest(type="forever")).job
    service.run(delivery_of(job))

    # When its next invocation comes an hour later
    clock.advance(timedelta(hours=1))
    [between] = repo.jobs
    service.run(delivery_of(between))

    # Then it fails: more time cannot be taken by continuing
    [failed] = repo.jobs
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == "MaxRuntimeExceeded"


def test_a_worker_that_dies_after_a_checkpoint_loses_only_what_came_after_it() -> None:
    # Given a handler that saves after each of 5 steps, and whose first worker dies after 2
    seen: list[Any] = []

    def steps(payload: AnyInput, context: JobContext) -> Any:
        seen.append((context.attempt, context.state))
        done = (context.state or {"done": 0})["done"]
        while done < 5:
            done += 1
            context.checkpoint({"done": done})
            if context.attempt == 1 and done == 2:
                raise WorkerCrash("the environment was killed")
        return {"done": done}

    clock = FakeClock()
    service, repo, _ = build_fake_service(
        build_registry([a_type("five", steps, max_runtime_s=3600)]), clock=clock
    )
    job = service.submit(ANN, SubmitRequest(type="five")).job
    lease = clock.now + timedelta(minutes=2)
    with pytest.raises(WorkerCrash):
        service.run(delivery_of(job, lease_until=lease))

    # When its message comes back after the lease
    clock.advance(timedelta(minutes=5))
    [running] = repo.jobs
    assert service.run(delivery_of(running)) is RunOutcome.DONE

    # Then the next attempt started from the last checkpoint, not from the beginning
    assert seen == [(1, None), (2, {"done": 2})]
    [done] = repo.jobs
    assert (done.status, done.result) == (JobStatus.SUCCEEDED, {"done": 5})
    assert [entry.error.type if entry.error else None for entry in done.history] == [
        "WorkerLost",
        None,
    ]


def test_a_checkpoint_too_large_fails_the_job_at_once() -> None:
    def big(payload: AnyInput, context: JobContext) -> Any:
        context.checkpoint({"blob": "x" * 40_000})
        return {}

    service, repo, _ = build_fake_service(build_registry([a_type("big", big)]))
    job = service.submit(ANN, SubmitRequest(type="big", max_attempts=3)).job
    assert service.run(delivery_of(job)) is RunOutcome.DONE
    [failed] = repo.jobs
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == "InvalidCheckpoint"
