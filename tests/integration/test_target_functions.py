"""Job types backed by a team's own Lambda function, end to end through the functions the template
names, on moto, with the worker's real Lambda client (botocore) pointed at the Invoke API's
stand-in on loopback (`jobline_local.lambda_standin`, JOBLINE_LAMBDA_ENDPOINT_URL): a target that
succeeds, an error that is retried and then succeeds, one that is permanent, a throttle tried
again within the attempt, Lambda's 5xx, an unknown function, and an answer lost after the
function ran (never sent again by the worker: the job's next attempt runs it again). And a
`local:` target, as `make run` runs one, through the same worker."""

from __future__ import annotations

import importlib
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobline import bootstrap
from jobline_local.lambda_standin import LambdaStandIn
from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack
from jobline_local.template import function_handler, load_template

from tests.conftest import FakeLambdaContext, MotoStack, sqs_event
from tests.support.events import http_api_event

TEMPLATE = load_template()
OWNER = "team-member"
MODULE = "team_targets"
TYPES = {
    "resize": "the team's resize function",
    "flaky": "fails its first attempt",
    "refuses": "raises its PermanentJobError",
    "nowhere": "a function Lambda does not know",
}
DECLARATIONS = """
from jobline.backoff import Backoff
from jobline.registry import JobType
from pydantic import BaseModel, ConfigDict


class ResizeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int
    format: str = "png"


AT_ONCE = Backoff(base_s=0.001, cap_s=0.001, floor_s=0)  # retried without a wait (tests)
JOB_TYPES = [
    JobType(name=name, description=description, input_model=ResizeInput, target=target,
            backoff=AT_ONCE)
    for name, description, target in TARGETS
]
"""


class PermanentJobError(Exception):
    """The team's own exception, named as Jobline's rule wants."""


def resize(event: dict[str, Any], context: Any) -> Any:
    return {"width": event["payload"]["width"] * 2, "event": event}


def flaky(event: dict[str, Any], context: Any) -> Any:
    if event["attempt"] == 1:
        raise RuntimeError("the image store timed out")
    return {"attempt": event["attempt"]}


def refuses(event: dict[str, Any], context: Any) -> Any:
    raise PermanentJobError("not an image")


def function(name: str) -> Any:
    """The handler the template names for function `name`, imported as Lambda would."""
    module, _, attribute = function_handler(TEMPLATE, name).rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    event = http_api_event(
        method, path, body=None if body is None else json.dumps(body), sub=OWNER
    )
    response = function("ApiFunction")(event, FakeLambdaContext(timeout_s=15))
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def team_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LambdaStandIn]:
    """The stand-in serving the team's functions, the worker's Lambda client pointed at it, and
    the team's module declaring a type per function (and `resize.local`, a local target)."""
    with LambdaStandIn() as lambda_:
        targets = [
            (name, description, lambda_.arn(name))
            for name, description in TYPES.items()
        ]
        targets.append(
            ("resize.local", "resize, in the worker", f"local:{__name__}:resize")
        )
        for name, call in (("resize", resize), ("flaky", flaky), ("refuses", refuses)):
            lambda_.add(name, call)
        (tmp_path / f"{MODULE}.py").write_text(f"TARGETS = {targets!r}\n{DECLARATIONS}")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv("JOBLINE_JOB_TYPE_MODULES", MODULE)
        monkeypatch.setenv("JOBLINE_LAMBDA_ENDPOINT_URL", lambda_.endpoint)
        bootstrap.reset()
        try:
            yield lambda_
        finally:
            sys.modules.pop(MODULE, None)
            bootstrap.reset()


@pytest.fixture
def stand_in(moto_stack: MotoStack, team_functions: LambdaStandIn) -> LambdaStandIn:
    """`team_functions` over moto's table and queues (the functions called in-process)."""
    return team_functions


def submit(job_type: str, **fields: Any) -> str:
    status, job = api("POST", "/jobs", {"type": job_type, **fields})
    assert (status, job["status"]) == (202, "queued"), job
    job_id: str = job["id"]
    return job_id


def work(stack: MotoStack) -> dict[str, Any]:
    """The worker function on the one message the outbox sent; its answer to SQS."""
    [message] = stack.receive()
    event = sqs_event([message], stack.provisioned.queue_arns["JobsQueue"])
    answer: dict[str, Any] = function("WorkerFunction")(event, FakeLambdaContext())
    return answer


def job(job_id: str) -> dict[str, Any]:
    status, shown = api("GET", f"/jobs/{job_id}")
    assert status == 200
    return dict(shown)


def errors(shown: dict[str, Any]) -> list[str | None]:
    return [
        entry["error"]["type"] if entry["error"] else None for entry in shown["history"]
    ]


def test_a_target_function_runs_the_job_and_its_answer_is_the_result(
    moto_stack: MotoStack, stand_in: LambdaStandIn
) -> None:
    # Given a job of the type whose target is the team's resize function
    job_id = submit("resize", payload={"width": 3})

    # When the worker runs it
    assert work(moto_stack) == {"batchItemFailures": []}

    # Then the function was invoked once, synchronously, with the job's event, and its answer
    # is the result
    [call] = [i for i in stand_in.invocations if i.name == "resize"]
    assert (call.invocation_type, call.ran) == ("RequestResponse", True)
    assert set(call.event) == {
        "job_id",
        "type",
        "attempt",
        "run",
        "payload",
        "deadline",
    }
    assert call.event["payload"] == {"width": 3, "format": "png"}
    shown = job(job_id)
    assert (shown["status"], shown["attempts"]) == ("succeeded", 1)
    assert shown["result"] == {"width": 6, "event": call.event}


def test_a_function_error_is_retried_then_the_job_succeeds(
    moto_stack: MotoStack, stand_in: LambdaStandIn
) -> None:
    # Given a function that raises on the job's first attempt
    job_id = submit("flaky", payload={"width": 1}, max_attempts=3)

    # When the worker runs it, then the message goes back and the job is queued with its error
    first = work(moto_stack)
    assert len(first["batchItemFailures"]) == 1
    queued = job(job_id)
    assert queued["status"] == "queued"
    assert queued["error"] == {
        "type": "RuntimeError",
        "message": "the image store timed out",
    }

    # When SQS delivers it again (the type's backoff is none), then the second attempt succeeds
    assert work(moto_stack) == {"batchItemFailures": []}
    done = job(job_id)
    assert (done["status"], done["attempts"], done["result"]) == (
        "succeeded",
        2,
        {"attempt": 2},
    )
    assert errors(done) == ["RuntimeError", None]
    assert [event["attempt"] for event in stand_in.runs("flaky")] == [1, 2]


def test_a_permanent_function_error_fails_the_job_at_once(
    moto_stack: MotoStack, stand_in: LambdaStandIn
) -> None:
    job_id = submit("refuses", payload={"width": 1}, max_attempts=3)

    assert work(moto_stack) == {"batchItemFailures": []}

    failed = job(job_id)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert failed["error"] == {"type": "PermanentJobError", "message": "not an image"}
    assert len(stand_in.runs("refuses")) == 1


def test_a_throttle_is_tried_again_within_the_attempt(
    moto_stack: MotoStack, stand_in: LambdaStandIn
) -> None:
    # Given Lambda throttling the function's next invocation (429 TooManyRequestsException)
    stand_in.fail_next("resize", 429)
    job_id = submit("resize", payload={"width": 2})

    # When the worker runs the job
    assert work(moto_stack) == {"batchItemFailures": []}

    # Then the invocation was made again, and the first attempt succeeded
    calls = [i.ran for i in stand_in.invocations if i.name == "resize"]
    assert calls == [False, True]
    shown = job(job_id)
    assert (shown["status"], shown["attempts"]) == ("succeeded", 1)


def test_lambdas_5xx_past_the_tries_fails_the_attempt_retryably(
    moto_stack: MotoStack, stand_in: LambdaStandIn
) -> None:
    # Given Lambda failing every try of the first attempt (500 ServiceException)
    stand_in.fail_next("resize", 500, times=3)
    job_id = submit("resize", payload={"width": 2}, max_attempts=2)

    # When the worker runs it, then the attempt failed with Lambda's code, the function never ran
    assert len(work(moto_stack)["batchItemFailures"]) == 1
    queued = job(job_id)
    assert (queued["status"], queued["error"]["type"]) == ("queued", "ServiceException")
    assert stand_in.runs("resize") == []

    # And the next attempt runs it
    assert work(moto_stack) == {"batchItemFailures": []}
    assert job(job_id)["status"] == "succeeded"


def test_an_answer_lost_after_the_function_ran_is_not_resent_by_the_worker(
    moto_stack: MotoStack, stand_in: LambdaStandIn
) -> None:
    # Given the function's next answer lost on the way (it runs; the connection closes)
    stand_in.drop_next("resize")
    job_id = submit("resize", payload={"width": 2}, max_attempts=2)

    # When the worker runs the job, then the attempt fails retryably, the invocation once sent
    assert len(work(moto_stack)["batchItemFailures"]) == 1
    queued = job(job_id)
    assert (queued["status"], queued["error"]["type"]) == (
        "queued",
        "FunctionOutcomeUnknown",
    )
    assert len(stand_in.runs("resize")) == 1

    # And the job's next attempt runs it again: at least once, as every job
    assert work(moto_stack) == {"batchItemFailures": []}
    assert job(job_id)["status"] == "succeeded"
    assert [event["attempt"] for event in stand_in.runs("resize")] == [1, 2]


def test_a_function_lambda_does_not_know_fails_the_job(
    moto_stack: MotoStack, stand_in: LambdaStandIn
) -> None:
    job_id = submit("nowhere", payload={"width": 1}, max_attempts=3)

    assert work(moto_stack) == {"batchItemFailures": []}

    failed = job(job_id)
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert failed["error"]["type"] == "ResourceNotFoundException"


def test_a_local_target_runs_in_the_worker_as_its_function_would(
    moto_stack: MotoStack, stand_in: LambdaStandIn
) -> None:
    # Given a type whose target is a local callable (make run), and its job
    job_id = submit("resize.local", payload={"width": 5})

    # When the worker runs it, then the callable ran as Lambda would run it, in the worker: the
    # stand-in saw nothing
    assert work(moto_stack) == {"batchItemFailures": []}
    shown = job(job_id)
    assert shown["status"] == "succeeded"
    assert shown["result"]["width"] == 10
    assert shown["result"]["event"]["type"] == "resize.local"
    assert stand_in.invocations == []


def test_the_api_lists_target_types_without_their_functions(
    moto_stack: MotoStack, stand_in: LambdaStandIn
) -> None:
    status, types = api("GET", "/job-types")
    assert status == 200
    listed = {job_type["name"]: job_type for job_type in types}
    assert set(TYPES) | {"resize.local"} <= set(listed)
    assert listed["resize"]["input_schema"]["required"] == ["width"]
    assert "arn:aws:lambda" not in json.dumps(types)


def test_make_run_runs_target_types_local_and_at_the_lambda_endpoint(
    team_functions: LambdaStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given `make run` (the whole local stack) with the team's types, its Lambda endpoint the
    # stand-in (as `sam local start-lambda` would be)
    settings = LocalSettings(
        host="127.0.0.1",
        api_port=0,
        moto_port=0,
        prefix=f"jobline-targets-{uuid.uuid4().hex[:8]}",
        state_file=None,
    )
    with (
        LocalStack(settings, set_env=monkeypatch.setenv) as stack,
        httpx.Client(
            base_url=stack.api_url, headers={"X-Dev-User": OWNER}, timeout=5
        ) as client,
    ):
        # When a job of a local target and one of an ARN target are submitted over HTTP
        ids = {
            name: client.post(
                "/jobs", json={"type": name, "payload": {"width": 4}}
            ).json()["id"]
            for name in ("resize.local", "resize")
        }

        # Then the pollers run both through the worker, and each succeeds with its answer
        def finished() -> dict[str, Any]:
            jobs = {name: client.get(f"/jobs/{i}").json() for name, i in ids.items()}
            done = all(j["status"] in ("succeeded", "failed") for j in jobs.values())
            return jobs if done else {}

        end = time.monotonic() + 15
        jobs = finished()
        while not jobs and time.monotonic() < end:
            time.sleep(0.05)
            jobs = finished()
    assert {name: (j["status"], j["result"]["width"]) for name, j in jobs.items()} == {
        "resize.local": ("succeeded", 8),
        "resize": ("succeeded", 8),
    }
    # (the ARN's invocation reached the stand-in; the local one never left the worker)
    assert [event["job_id"] for event in team_functions.runs("resize")] == [
        ids["resize"]
    ]
