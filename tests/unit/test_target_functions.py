"""Job types backed by a Lambda function of a team's own (`JobType.target`): the declaration, the
event the function gets, how its answer and its errors count, and the attempt through the
service over in-memory fakes: an ARN through an in-memory `FunctionInvoker`, a `local:` callable
run in the worker as Lambda's Python runtime would run it. The same functions serve both.
(tests/integration/test_target_functions.py runs them against the Invoke API's stand-in.)"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jobline import bootstrap
from jobline.config import Settings
from jobline.errors import FunctionFailed, FunctionInvokeFailed
from jobline.models import JobStatus, SubmitRequest
from jobline.registry import InvalidJobTypeDeclaration, JobType, JobTypeRegistry
from jobline.service import RunOutcome
from jobline.targets import (
    FunctionAnswer,
    LambdaTarget,
    LocalLambdaContext,
    LocalTarget,
    call_like_lambda,
    is_permanent,
    parse_target,
    result_of,
)
from pydantic import BaseModel, ConfigDict

from tests.support.builders import ANN, after_backoff, delivery_of
from tests.support.fakes import (
    FakeClock,
    InMemoryFunctionInvoker,
    InMemoryJobQueue,
    InMemoryJobRepository,
)
from tests.support.services import build_fake_service, build_registry

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:resize"
HERE = __name__
WAIT_S = 10.0
"""Upper bound of every wait on a thread here; a healthy run never comes near it."""


class ResizeInput(BaseModel):
    """The input of the test types: a width, and a format with a default."""

    model_config = ConfigDict(extra="forbid")

    width: int
    format: str = "png"


class PermanentJobError(Exception):
    """A team's own exception, named as the rule wants (the function imports nothing of
    Jobline's)."""


# ------------------------------------------------------------- the team's functions
def resize(event: dict[str, Any], context: Any) -> Any:
    return {"width": event["payload"]["width"] * 2, "event": event}


def flaky(event: dict[str, Any], context: Any) -> Any:
    if event["attempt"] == 1:
        raise RuntimeError("the image store timed out")
    return {"attempt": event["attempt"]}


def refuses(event: dict[str, Any], context: Any) -> Any:
    raise PermanentJobError("not an image")


def huge(event: dict[str, Any], context: Any) -> Any:
    # over the deployment's result limit (a smaller result than that goes to the data bucket)
    return "x" * (Settings.model_fields["max_result_bytes"].default + 1)


def deep(event: dict[str, Any], context: Any) -> Any:
    nested: Any = 1
    for _ in range(200):
        nested = [nested]
    return nested


def not_a_function(event: dict[str, Any]) -> Any:
    return event


# --------------------------------------------------------------------- the declaration
def declare(
    target: str | None = None, handler: Any = None, name: str = "resize"
) -> JobType[Any]:
    return JobType(
        name=name,
        description="resizes",
        input_model=ResizeInput,
        handler=handler,
        target=target,
    )


@pytest.mark.parametrize(
    ("target", "parsed"),
    [
        (ARN, LambdaTarget(ARN, "aws", "eu-west-1", "123456789012", "resize", None)),
        (
            f"{ARN}:live",
            LambdaTarget(
                f"{ARN}:live", "aws", "eu-west-1", "123456789012", "resize", "live"
            ),
        ),
        (
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:$LATEST",
            LambdaTarget(
                "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:$LATEST",
                "aws-us-gov",
                "us-gov-west-1",
                "123456789012",
                "f",
                "$LATEST",
            ),
        ),
        ("local:team.functions:resize", LocalTarget("team.functions:resize")),
    ],
)
def test_a_target_is_a_function_arn_or_a_local_callable(
    target: str, parsed: LambdaTarget | LocalTarget
) -> None:
    assert parse_target(target) == parsed
    assert declare(target).function == parsed


@pytest.mark.parametrize(
    "target",
    [
        "resize",
        "123456789012:function:resize",
        "arn:aws:lambda:eu-west-1:123456789012:function:*",
        "arn:aws:lambda:eu-west-1:123456789012:layer:resize",
        "arn:aws:lambda:eu-west-1:12345:function:resize",
        "arn:aws:s3:::bucket",
        f"{ARN}:live:extra",
        "local:not a path",
        "local:team.functions",
    ],
)
def test_a_target_that_names_no_function_is_refused_at_declaration(
    target: str,
) -> None:
    with pytest.raises(InvalidJobTypeDeclaration) as refused:
        declare(target)
    assert refused.value.job_type == "resize"
    assert repr(target) in refused.value.message


def test_a_type_declares_exactly_one_of_handler_and_target() -> None:
    with pytest.raises(InvalidJobTypeDeclaration, match="both a handler and a target"):
        declare(ARN, handler=resize)
    with pytest.raises(InvalidJobTypeDeclaration, match="no handler"):
        declare()


def test_a_target_type_is_never_async_and_runs_no_handler() -> None:
    # Given a type whose target is a function ARN
    job_type = declare(ARN)

    # Then the attempt waits for its invocation in a thread (I/O), never on the handler loop,
    # and the type has no handler to run or resolve
    assert job_type.is_async is False
    with pytest.raises(InvalidJobTypeDeclaration, match="no handler"):
        job_type.resolve()
    with pytest.raises(TypeError, match="has a target"):
        job_type.run({"width": 1}, None)  # type: ignore[arg-type]


def test_the_worker_init_resolves_local_targets_and_skips_function_arns() -> None:
    # Given a registry with an ARN target, a local target and a local one that cannot work
    registry = JobTypeRegistry(
        [declare(ARN, name="remote"), declare(f"local:{HERE}:resize", name="local")]
    )

    # Then resolving every type imports the local callable and leaves the ARN alone
    registry.resolve_all()
    assert registry.get("local").resolve() is resize

    # ... and a local callable that cannot be a Lambda handler is refused then, naming its type
    for path, problem in [
        (f"{HERE}:not_a_function", r"cannot be called as handler\(payload, context\)"),
        (f"{HERE}:missing", "has no attribute"),
        ("team_functions_nowhere:resize", "cannot import"),
    ]:
        broken = JobTypeRegistry([declare(f"local:{path}", name="broken")])
        with pytest.raises(InvalidJobTypeDeclaration, match=problem) as refused:
            broken.resolve_all()
        assert refused.value.job_type == "broken"


def test_on_lambda_the_worker_refuses_a_local_target_when_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment whose types include one with a local target
    (tmp_path / "team_local_targets.py").write_text(
        "from jobline.registry import JobType\n"
        "from pydantic import RootModel\n"
        "class AnyInput(RootModel[dict]):\n    pass\n"
        "JOB_TYPES = [JobType(name='resize.local', description='d', input_model=AnyInput,"
        f" target='local:{HERE}:resize')]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("JOBLINE_JOB_TYPE_MODULES", "team_local_targets")

    # Then the worker's init accepts it locally (make run) ...
    bootstrap.load_handlers()

    # ... and on Lambda stops the worker at its start, naming the type
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "jobline-worker")
    with pytest.raises(InvalidJobTypeDeclaration, match="runs only locally") as refused:
        bootstrap.load_handlers()
    assert refused.value.job_type == "resize.local"
    sys.modules.pop("team_local_targets", None)


# ------------------------------------------------------------------------ the answer rule
@pytest.mark.parametrize(
    ("error_type", "permanent"),
    [
        ("PermanentJobError", True),
        ("com.example.jobs.PermanentJobError", True),
        ("ValueError", False),
        ("NotPermanentJobError", False),
        ("PermanentJobErrors", False),
        ("Sandbox.Timedout", False),
        ("Runtime.ExitError", False),
    ],
)
def test_a_function_marks_its_error_permanent_by_its_error_type(
    error_type: str, permanent: bool
) -> None:
    # Given a function's error answer, as Lambda gives it
    body = {"errorType": error_type, "errorMessage": "it failed", "stackTrace": []}
    answer = FunctionAnswer(json.dumps(body).encode(), function_error="Unhandled")

    # Then it fails the attempt with the function's own type and message: permanent exactly for
    # PermanentJobError (bare or namespaced), retryable for anything else
    assert is_permanent(error_type) is permanent
    with pytest.raises(FunctionFailed) as failed:
        result_of(answer)
    assert (failed.value.error_type, failed.value.message) == (error_type, "it failed")
    assert failed.value.retryable is not permanent


def test_an_error_answer_without_lambdas_shape_is_still_a_retryable_failure() -> None:
    with pytest.raises(FunctionFailed) as failed:
        result_of(FunctionAnswer(b"segfault", function_error="Unhandled"))
    assert (failed.value.error_type, failed.value.message) == (
        "FunctionError",
        "segfault",
    )
    assert failed.value.retryable


def test_an_error_answer_is_cut_to_the_job_errors_limits() -> None:
    body = {"errorType": "E" * 1000, "errorMessage": "m" * 100_000}
    with pytest.raises(FunctionFailed) as failed:
        result_of(FunctionAnswer(json.dumps(body).encode(), function_error="Unhandled"))
    assert (len(failed.value.error_type), len(failed.value.message)) == (256, 4096)


@pytest.mark.parametrize(
    ("payload", "result"),
    [
        (b'{"width": 2}', {"width": 2}),
        (b"null", None),
        (b"", None),
        (b"[1, 2]", [1, 2]),
    ],
)
def test_a_json_answer_is_the_result(payload: bytes, result: Any) -> None:
    assert result_of(FunctionAnswer(payload)) == result


def test_an_answer_that_is_not_json_fails_the_job() -> None:
    with pytest.raises(FunctionFailed) as failed:
        result_of(FunctionAnswer(b"<html>"))
    assert (failed.value.error_type, failed.value.retryable) == ("InvalidResult", False)


# ------------------------------------------------------------ a callable standing in
def context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="resize", deadline=time.time() + 60)


def test_a_local_callable_runs_as_lambdas_python_runtime_runs_a_handler() -> None:
    event = json.dumps({"attempt": 1, "payload": {"width": 3}}).encode()

    # A result is JSON; a raised exception is an error answer named by its class
    assert call_like_lambda(resize, event, context()).payload.startswith(b'{"width": 6')
    refused = call_like_lambda(refuses, event, context())
    assert refused.function_error == "Unhandled"
    assert json.loads(refused.payload)["errorType"] == "PermanentJobError"

    # What JSON cannot hold, and an `async def` (which Lambda's runtime never awaits), are the
    # runtime's marshal error
    async def coroutine(event: Any, context: Any) -> Any:
        return 1

    for function in (lambda e, c: {1, 2}, coroutine):
        answer = call_like_lambda(function, event, context())
        assert answer.function_error == "Unhandled"
        assert json.loads(answer.payload)["errorType"] == "Runtime.MarshalError"


# ---------------------------------------------------------------- through the service
Run = tuple[Any, InMemoryJobRepository, InMemoryJobQueue, InMemoryFunctionInvoker]


def service_with_target(
    function: Callable[[Any, Any], Any], *, local: bool, clock: FakeClock
) -> Run:
    """A service over fakes whose type `resize` targets `function`: by ARN (through the
    in-memory invoker) or as a local callable."""
    invoker = InMemoryFunctionInvoker()
    if local:
        target = f"local:{HERE}:{function.__name__}"
    else:
        target = invoker.add(ARN, function)
    registry = build_registry([declare(target)])
    service, repo, queue = build_fake_service(registry, clock=clock, invoker=invoker)
    return service, repo, queue, invoker


KINDS = pytest.mark.parametrize("local", [False, True], ids=["arn", "local"])


@KINDS
def test_the_functions_answer_is_the_result(local: bool, clock: FakeClock) -> None:
    # Given a job of a type whose target doubles the width
    service, repo, _, invoker = service_with_target(resize, local=local, clock=clock)
    job = service.submit(ANN, SubmitRequest(type="resize", payload={"width": 3})).job

    # When the worker runs it
    before = time.time()
    assert service.run(delivery_of(job)) is RunOutcome.DONE

    # Then the function's answer is the result
    done = repo.get(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert done.result["width"] == 6
    # And the function got the job's event: the payload validated (defaults filled in), and the
    # epoch time at which the worker stops waiting for it
    event = done.result["event"]
    assert set(event) == {"job_id", "type", "attempt", "run", "payload", "deadline"}
    assert (event["job_id"], event["type"], event["attempt"], event["run"]) == (
        job.id,
        "resize",
        1,
        1,
    )
    assert event["payload"] == {"width": 3, "format": "png"}
    assert event["deadline"] > before
    assert [arn for arn, _ in invoker.calls] == ([] if local else [ARN])


@KINDS
def test_a_function_error_is_retried_with_backoff_then_succeeds(
    local: bool, clock: FakeClock
) -> None:
    # Given a function that fails its first attempt
    service, repo, queue, _ = service_with_target(flaky, local=local, clock=clock)
    job = service.submit(
        ANN, SubmitRequest(type="resize", payload={"width": 1}, max_attempts=3)
    ).job

    # When its first attempt runs
    assert service.run(delivery_of(job)) is RunOutcome.REDELIVER

    # Then the job is queued again after a backoff, with the function's error
    queued = repo.get(job.id)
    assert queued is not None and queued.status is JobStatus.QUEUED
    assert queued.error is not None
    assert (queued.error.type, queued.error.message) == (
        "RuntimeError",
        "the image store timed out",
    )
    assert len(queue.visibility) == 1

    # When SQS delivers it again after the backoff
    after_backoff(clock, queue)
    assert service.run(delivery_of(job)) is RunOutcome.DONE

    # Then the second attempt succeeded
    done = repo.get(job.id)
    assert done is not None
    assert (done.status, done.attempts, done.result) == (
        JobStatus.SUCCEEDED,
        2,
        {"attempt": 2},
    )
    assert [entry.error.type if entry.error else None for entry in done.history] == [
        "RuntimeError",
        None,
    ]


@KINDS
def test_a_permanent_function_error_fails_the_job_at_once(
    local: bool, clock: FakeClock
) -> None:
    # Given a function that raises its PermanentJobError, and attempts left
    service, repo, queue, _ = service_with_target(refuses, local=local, clock=clock)
    job = service.submit(
        ANN, SubmitRequest(type="resize", payload={"width": 1}, max_attempts=3)
    ).job

    # When it runs, then the job failed on its first attempt, and nothing is queued again
    assert service.run(delivery_of(job)) is RunOutcome.DONE
    failed = repo.get(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == (
        "PermanentJobError",
        "not an image",
    )
    assert queue.visibility == []


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        (
            FunctionInvokeFailed(
                "TooManyRequestsException", "throttled", retryable=True
            ),
            JobStatus.QUEUED,
        ),
        (
            FunctionInvokeFailed(
                "ServiceException", "Lambda answered 500", retryable=True
            ),
            JobStatus.QUEUED,
        ),
        (
            FunctionInvokeFailed(
                "AccessDeniedException", "not in JobTargetArns", retryable=False
            ),
            JobStatus.FAILED,
        ),
    ],
)
def test_what_keeps_lambda_from_running_the_function_fails_the_attempt(
    refusal: FunctionInvokeFailed, status: JobStatus, clock: FakeClock
) -> None:
    # Given Lambda answering the invocation without running the function (after the
    # adapter's own tries)
    service, repo, _, invoker = service_with_target(resize, local=False, clock=clock)
    invoker.refuse_next(ARN, refusal)
    job = service.submit(ANN, SubmitRequest(type="resize", payload={"width": 1})).job

    # When the attempt runs
    service.run(delivery_of(job))

    # Then it failed with Lambda's error code: queued again (throttled, 5xx) or failed
    ended = repo.get(job.id)
    assert ended is not None and ended.error is not None
    assert (ended.status, ended.error.type) == (status, refusal.error_type)


def test_a_function_arn_unknown_to_lambda_fails_the_job(clock: FakeClock) -> None:
    service, repo, _, invoker = service_with_target(resize, local=False, clock=clock)
    invoker.functions.clear()
    job = service.submit(ANN, SubmitRequest(type="resize", payload={"width": 1})).job
    service.run(delivery_of(job))
    failed = repo.get(job.id)
    assert failed is not None and failed.error is not None
    assert (failed.status, failed.error.type) == (
        JobStatus.FAILED,
        "ResourceNotFoundException",
    )


@KINDS
@pytest.mark.parametrize(
    ("function", "error_type"), [(huge, "ResultTooLarge"), (deep, "InvalidResult")]
)
def test_a_functions_result_meets_the_checks_of_a_handlers(
    local: bool,
    function: Callable[[Any, Any], Any],
    error_type: str,
    clock: FakeClock,
) -> None:
    service, repo, _, _ = service_with_target(function, local=local, clock=clock)
    job = service.submit(ANN, SubmitRequest(type="resize", payload={"width": 1})).job
    service.run(delivery_of(job))
    failed = repo.get(job.id)
    assert failed is not None and failed.error is not None
    assert (failed.status, failed.error.type) == (JobStatus.FAILED, error_type)


def test_a_stored_payload_the_model_refuses_is_never_sent(clock: FakeClock) -> None:
    # Given a job stored with a payload its type's model no longer accepts
    service, repo, _, invoker = service_with_target(resize, local=False, clock=clock)
    job = service.submit(ANN, SubmitRequest(type="resize", payload={"width": 1})).job
    repo.put(job.model_copy(update={"payload": {"width": "wide"}}))

    # When it runs, then it fails for good without an invocation
    service.run(delivery_of(job))
    failed = repo.get(job.id)
    assert failed is not None and failed.error is not None
    assert (failed.status, failed.error.type) == (JobStatus.FAILED, "InvalidPayload")
    assert invoker.calls == []


def test_a_function_still_running_at_the_deadline_fails_the_attempt_retryably(
    clock: FakeClock,
) -> None:
    # Given a function that answers only when released
    release = threading.Event()

    def slow(event: Any, context: Any) -> Any:
        release.wait(WAIT_S)
        return {"late": True}

    service, repo, _, _ = service_with_target(slow, local=False, clock=clock)
    job = service.submit(ANN, SubmitRequest(type="resize", payload={"width": 1})).job

    # When the attempt's deadline comes first
    try:
        outcome = service.run(delivery_of(job, deadline=time.monotonic() + 0.2))
    finally:
        release.set()

    # Then the attempt stopped waiting: a retryable DeadlineExceeded, as for a handler
    assert outcome is RunOutcome.REDELIVER
    queued = repo.get(job.id)
    assert queued is not None and queued.error is not None
    assert (queued.status, queued.error.type) == (JobStatus.QUEUED, "DeadlineExceeded")


def test_the_registry_lists_a_target_type_like_any_other() -> None:
    # The API publishes a target type's input schema and never its ARN
    job_type = declare(ARN)
    assert job_type.input_schema()["required"] == ["width"]
    assert ARN not in json.dumps(job_type.input_schema())
