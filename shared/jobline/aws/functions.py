"""Lambda's Invoke API: a job type's target function, invoked synchronously (`RequestResponse`).

What may be tried again is decided here, where the failures can be told apart (the client's own
retries are off: botocore would also resend after a read timeout, running the function twice):
- Lambda answered without running the function (429 `TooManyRequestsException`, a 5xx), or no
  connection was made: tried again after a short pause, at most `FUNCTION_INVOKE_TRIES` times
  and while the attempt has time, then a retryable `FunctionInvokeFailed`;
- the request was sent and no answer came (a read timeout, a dropped connection): the function
  may have run. Never sent again here: a retryable `FunctionInvokeFailed` (`FunctionOutcomeUnknown`)
  ends the attempt, and Jobline's backoff retries the job (at least once, as every attempt);
- 409 (the function is being updated) is retryable on a later attempt; any other 4xx (no such
  function, access denied: the ARN is not in the stack's `JobTargetArns`, a payload too large)
  is permanent: trying again changes nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from jobline.errors import FunctionInvokeFailed
from jobline.limits import FUNCTION_INVOKE_TRIES, FUNCTION_RETRY_BASE_S
from jobline.logging import get_logger
from jobline.targets import FunctionAnswer

log = get_logger(__name__)

TRIED_AGAIN_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Lambda's answers that say the function was not run, and may be at once (throttled, 5xx)."""
RETRYABLE_REFUSALS = frozenset({408, 409})
"""4xx answers that may pass later (a function being updated: `ResourceConflictException`)."""
OUTCOME_UNKNOWN = "FunctionOutcomeUnknown"
"""The job error's type when the invocation's answer was lost (the function may have run)."""


class InvokeApi(Protocol):
    """What the invoker calls: Lambda's Invoke."""

    def invoke(self, **kwargs: Any) -> Mapping[str, Any]: ...


class LambdaClient(InvokeApi, Protocol):
    """The part of botocore's Lambda client Jobline uses (`jobline.aws.clients.lambda_client`)."""

    meta: Any

    def close(self) -> None: ...


class LambdaFunctionInvoker:
    """`FunctionInvoker` over Lambda's Invoke API (`jobline.aws.clients.lambda_client`)."""

    def __init__(
        self,
        client: Callable[[], InvokeApi],
        *,
        tries: int = FUNCTION_INVOKE_TRIES,
        base_pause_s: float = FUNCTION_RETRY_BASE_S,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._tries = tries
        self._base_pause_s = base_pause_s
        self._rng = rng or random.Random()
        self._sleep = sleep

    def invoke(self, arn: str, event: bytes, *, deadline: float) -> FunctionAnswer:
        """Invoke `arn` with `event` (JSON) and wait for its answer; see the module's rules."""
        for number in range(1, self._tries + 1):
            try:
                return self._invoke_once(arn, event)
            except ClientError as exc:
                status = int(
                    exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                )
                code = str(exc.response.get("Error", {}).get("Code") or status)
                if status in TRIED_AGAIN_STATUSES:
                    reason = f"Lambda answered {status} {code}"
                    if self._pause(number, deadline, code):
                        continue
                    raise FunctionInvokeFailed(
                        code, _message(arn, reason, number), retryable=True
                    ) from None
                raise FunctionInvokeFailed(
                    code,
                    _message(arn, f"Lambda refused the call: {status} {code}", number),
                    retryable=status in RETRYABLE_REFUSALS,
                ) from None
            except (ConnectTimeoutError, EndpointConnectionError) as exc:
                # No connection was made: the request never reached Lambda.
                code = type(exc).__name__
                if self._pause(number, deadline, code):
                    continue
                raise FunctionInvokeFailed(
                    code,
                    _message(arn, "Lambda could not be reached", number),
                    retryable=True,
                ) from None
            except BotoCoreError as exc:
                # Sent, and no answer (read timeout, connection dropped): it may have run.
                raise FunctionInvokeFailed(
                    OUTCOME_UNKNOWN,
                    f"no answer from {_name(arn)} ({type(exc).__name__}): it may have run; "
                    "the job is retried as a failed attempt",
                    retryable=True,
                ) from None
        raise AssertionError("unreachable: the last try returns or raises")

    def _invoke_once(self, arn: str, event: bytes) -> FunctionAnswer:
        response = self._client().invoke(
            FunctionName=arn,
            InvocationType="RequestResponse",
            LogType="None",
            Payload=event,
        )
        payload = response["Payload"].read()
        error = response.get("FunctionError")
        return FunctionAnswer(payload, error if isinstance(error, str) else None)

    def _pause(self, number: int, deadline: float, code: str) -> bool:
        """Wait before try `number + 1`, if there is one and the attempt has time for it."""
        if number >= self._tries:
            return False
        ceiling = self._base_pause_s * 2 ** (number - 1)
        pause = self._rng.uniform(ceiling / 2, ceiling)
        if time.monotonic() + pause >= deadline:
            return False
        log.warning("function.invoke_retried", error_type=code, pause_s=round(pause, 3))
        self._sleep(pause)
        return True


def _name(arn: str) -> str:
    """The function's name (and qualifier) out of its ARN, for messages."""
    return arn.split(":function:", 1)[-1]


def _message(arn: str, reason: str, tries: int) -> str:
    return (
        f"{reason} (function {_name(arn)}, {tries} {'try' if tries == 1 else 'tries'})"
    )
