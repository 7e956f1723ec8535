"""A job type's target: a Lambda function of the team's own that the worker invokes instead of
running a handler (docs/job-types.md, "Your own Lambda function as a job type"). Pure: what a
target may be, the event the function gets, and what its answer means. The call itself is the
`FunctionInvoker` port's (`jobline.aws.functions` on AWS).

A target is a Lambda function ARN (`arn:aws:lambda:eu-west-1:123456789012:function:resize`,
optionally with an alias or version: `...:function:resize:live`), or, for local runs only,
`"local:package.module:function"`: a Python callable that stands in for the function, called as
Lambda's Python runtime calls a handler (`call_like_lambda`; the worker refuses it on Lambda).

The function gets one JSON object, `{job_id, type, attempt, run, payload, deadline}` (`deadline`:
epoch seconds at which the worker stops waiting for it), and its JSON answer is the job's result.
It fails the attempt by raising (Lambda answers with `FunctionError`): retried with backoff while
attempts are left, unless its `errorType` is `PermanentJobError` (or ends with
`.PermanentJobError`: a namespaced class), which fails the job at once (`is_permanent`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobline.errors import FunctionFailed
from jobline.limits import FUNCTION_ERROR_MESSAGE_CHARS, FUNCTION_ERROR_TYPE_CHARS

LOCAL_PREFIX = "local:"
"""`"local:package.module:function"`: a Python callable standing in for the function (local
runs)."""
LAMBDA_ARN = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):lambda:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d{1,2})"
    r":(?P<account>\d{12}):function:(?P<name>[A-Za-z0-9_-]{1,64})"
    r"(?::(?P<qualifier>\$LATEST|[A-Za-z0-9_-]{1,128}))?"
)
"""A function ARN: partition, region, account, function name, and an optional qualifier (an
alias, a version or `$LATEST`). Names and partial ARNs are refused: the worker's IAM grant
(`JobTargetArns`) names whole ARNs."""
PERMANENT_ERROR_TYPE = "PermanentJobError"
"""The `errorType` by which a function marks its failure permanent (`is_permanent`)."""
UNDESCRIBED_ERROR_TYPE = "FunctionError"
"""The job error's type when a function's error answer names none (not Lambda's JSON shape)."""


@dataclass(frozen=True)
class LambdaTarget:
    """A Lambda function, by its ARN."""

    arn: str
    partition: str
    region: str
    account: str
    name: str
    qualifier: str | None


@dataclass(frozen=True)
class LocalTarget:
    """A Python callable standing in for a function (local runs): `package.module:function`."""

    path: str


Target = LambdaTarget | LocalTarget


def parse_target(value: str) -> Target:
    """The target `value` names; ValueError saying why it names none."""
    if value.startswith(LOCAL_PREFIX):
        return LocalTarget(value.removeprefix(LOCAL_PREFIX))
    match = LAMBDA_ARN.fullmatch(value)
    if match is None:
        raise ValueError(
            f"target {value!r} is neither a Lambda function ARN "
            "(arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:ALIAS|:VERSION]) nor "
            '"local:package.module:function"'
        )
    return LambdaTarget(
        arn=value,
        partition=match["partition"],
        region=match["region"],
        account=match["account"],
        name=match["name"],
        qualifier=match["qualifier"],
    )


def target_event(
    *,
    job_id: str,
    job_type: str,
    attempt: int,
    run: int,
    payload: Any,
    deadline: float,
) -> bytes:
    """The JSON event a target function is invoked with. `deadline` is epoch seconds (the
    worker stops waiting for the function then)."""
    event = {
        "job_id": job_id,
        "type": job_type,
        "attempt": attempt,
        "run": run,
        "payload": payload,
        "deadline": round(deadline, 3),
    }
    return json.dumps(event, allow_nan=False, ensure_ascii=False).encode()


def epoch_deadline(deadline: float) -> float:
    """A `time.monotonic()` deadline as epoch seconds (what a function elsewhere can read)."""
    return time.time() + (deadline - time.monotonic())


@dataclass(frozen=True)
class FunctionAnswer:
    """What an invocation answered: the payload, and Lambda's `FunctionError` (`Unhandled`)
    when the function raised (the payload then describes the error)."""

    payload: bytes
    function_error: str | None = None


def is_permanent(error_type: str) -> bool:
    """Whether a function's `errorType` marks its failure permanent: `PermanentJobError`, or a
    namespaced class of that name (`com.example.PermanentJobError`)."""
    return error_type == PERMANENT_ERROR_TYPE or error_type.endswith(
        "." + PERMANENT_ERROR_TYPE
    )


def result_of(answer: FunctionAnswer) -> Any:
    """The function's result (its JSON answer; an empty answer is null), or `FunctionFailed`:
    the error it raised (retryable unless `is_permanent`), or an answer that is not JSON
    (`InvalidResult`, permanent: the function answers the same way next time)."""
    if answer.function_error is not None:
        error_type, message = _error_of(answer.payload)
        raise FunctionFailed(
            error_type, message, retryable=not is_permanent(error_type)
        )
    if not answer.payload.strip():
        return None
    try:
        return json.loads(answer.payload)
    except ValueError:
        raise FunctionFailed(
            "InvalidResult", "the function's answer is not JSON", retryable=False
        ) from None


def _error_of(payload: bytes) -> tuple[str, str]:
    """(errorType, errorMessage) of a function's error answer, each cut to its limit."""
    try:
        described = json.loads(payload)
    except ValueError:
        described = None
    if isinstance(described, dict):
        error_type = described.get("errorType")
        message = described.get("errorMessage")
    else:
        error_type = message = None
    if not isinstance(error_type, str) or not error_type:
        error_type = UNDESCRIBED_ERROR_TYPE
    if not isinstance(message, str):
        message = payload.decode(errors="replace")
    return (
        error_type[:FUNCTION_ERROR_TYPE_CHARS],
        message[:FUNCTION_ERROR_MESSAGE_CHARS],
    )


# ------------------------------------------------------------- a callable standing in
@dataclass(frozen=True)
class LocalLambdaContext:
    """The parts of Lambda's Python context object a function commonly reads, for a callable
    standing in for one."""

    function_name: str
    deadline: float
    """Epoch seconds at which the invocation ends."""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


def call_like_lambda(
    function: Callable[[Any, Any], Any], event: bytes, context: LocalLambdaContext
) -> FunctionAnswer:
    """Run `function(event, context)` as Lambda's Python runtime runs a handler: the event
    decoded from JSON, the return value encoded to JSON (what cannot be is the runtime's
    `Runtime.MarshalError`), and an exception answered as `FunctionError` with its class's name
    as `errorType` and its text as `errorMessage`."""
    try:
        result = function(json.loads(event), context)
    except Exception as exc:  # noqa: BLE001 (the function's error is its answer, recorded by the attempt)
        return _error_answer(type(exc).__name__, str(exc), context)
    try:
        payload = json.dumps(result, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        if hasattr(result, "close") and hasattr(result, "__await__"):
            result.close()  # an `async def` handler (Lambda's Python runtime awaits none)
        return _error_answer(
            "Runtime.MarshalError", f"Unable to marshal response: {exc}", context
        )
    return FunctionAnswer(payload.encode())


def _error_answer(
    error_type: str, message: str, context: LocalLambdaContext
) -> FunctionAnswer:
    body = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": context.aws_request_id,
        "stackTrace": [],
    }
    return FunctionAnswer(json.dumps(body).encode(), function_error="Unhandled")
