"""The Lambda adapter of `FunctionInvoker` (`jobline.aws.functions`) over a scripted client: what is
tried again (Lambda answered without running the function), what never is (the request was sent
and its answer lost: the function may have run), and what fails the job (a refusal); and the
Lambda client it is built on (`jobline.aws.clients.lambda_client`): where it points, its read
timeout and its tries. No socket: the client is created, never called."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from jobline import bootstrap
from jobline.aws.functions import OUTCOME_UNKNOWN, LambdaFunctionInvoker
from jobline.errors import FunctionInvokeFailed
from jobline.limits import FUNCTION_INVOKE_TRIES, LAMBDA_MAX_TIMEOUT_S
from jobline.targets import FunctionAnswer

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:resize:live"
EVENT = b'{"job_id": "j"}'


def lambda_error(status: int, code: str) -> ClientError:
    """What botocore raises for an error answer of Lambda's."""
    response: Any = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Invoke")


class ScriptedClient:
    """A Lambda client answering each `invoke` with the next of `script` (an exception is
    raised, a FunctionAnswer returned as botocore's response)."""

    def __init__(self, *script: BaseException | FunctionAnswer) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        response: dict[str, Any] = {
            "StatusCode": 200,
            "Payload": io.BytesIO(step.payload),
        }
        if step.function_error is not None:
            response["FunctionError"] = step.function_error
        return response


def invoker(client: ScriptedClient) -> tuple[LambdaFunctionInvoker, list[float]]:
    pauses: list[float] = []
    return (
        LambdaFunctionInvoker(lambda: client, base_pause_s=0.25, sleep=pauses.append),
        pauses,
    )


def in_a_minute() -> float:
    return time.monotonic() + 60


def test_an_invocation_is_one_synchronous_call_and_its_answer() -> None:
    client = ScriptedClient(FunctionAnswer(b'{"ok": true}'))
    adapter, pauses = invoker(client)

    answer = adapter.invoke(ARN, EVENT, deadline=in_a_minute())

    assert answer == FunctionAnswer(b'{"ok": true}')
    assert client.requests == [
        {
            "FunctionName": ARN,
            "InvocationType": "RequestResponse",
            "LogType": "None",
            "Payload": EVENT,
        }
    ]
    assert pauses == []


def test_the_functions_own_error_is_an_answer_never_tried_again() -> None:
    error = FunctionAnswer(b'{"errorType": "ValueError"}', function_error="Unhandled")
    client = ScriptedClient(error)
    adapter, _ = invoker(client)
    assert adapter.invoke(ARN, EVENT, deadline=in_a_minute()) == error
    assert len(client.requests) == 1


@pytest.mark.parametrize(
    "not_run",
    [
        lambda_error(429, "TooManyRequestsException"),
        lambda_error(500, "ServiceException"),
        lambda_error(502, "ResourceNotReadyException"),
        lambda_error(503, "ServiceUnavailable"),
        ConnectTimeoutError(endpoint_url="https://lambda"),
        EndpointConnectionError(endpoint_url="https://lambda"),
    ],
    ids=["throttled", "500", "502", "503", "connect-timeout", "no-connection"],
)
def test_an_answer_given_without_running_the_function_is_tried_again(
    not_run: BaseException,
) -> None:
    # Given Lambda answering once without running the function (or no connection at all)
    client = ScriptedClient(not_run, FunctionAnswer(b"1"))
    adapter, pauses = invoker(client)

    # When the function is invoked
    answer = adapter.invoke(ARN, EVENT, deadline=in_a_minute())

    # Then the call was made again after a short pause, and answered
    assert answer == FunctionAnswer(b"1")
    assert len(client.requests) == 2
    assert len(pauses) == 1 and 0.125 <= pauses[0] <= 0.25


def test_after_its_tries_a_throttle_is_a_retryable_failure_of_the_attempt() -> None:
    throttles = [lambda_error(429, "TooManyRequestsException")] * FUNCTION_INVOKE_TRIES
    client = ScriptedClient(*throttles)
    adapter, pauses = invoker(client)

    with pytest.raises(FunctionInvokeFailed) as failed:
        adapter.invoke(ARN, EVENT, deadline=in_a_minute())

    assert (failed.value.error_type, failed.value.retryable) == (
        "TooManyRequestsException",
        True,
    )
    assert len(client.requests) == FUNCTION_INVOKE_TRIES
    # (each pause at most twice the one before: 0.25 s, then 0.5 s at most)
    assert [p <= 0.25 * 2**n for n, p in enumerate(pauses)] == [True] * len(pauses)
    assert "resize:live" in failed.value.message


def test_no_try_is_started_that_the_deadline_leaves_no_time_for() -> None:
    client = ScriptedClient(lambda_error(429, "TooManyRequestsException"))
    adapter, pauses = invoker(client)

    with pytest.raises(FunctionInvokeFailed) as failed:
        adapter.invoke(ARN, EVENT, deadline=time.monotonic())

    assert failed.value.retryable
    assert (len(client.requests), pauses) == (1, [])


@pytest.mark.parametrize(
    "lost",
    [
        ReadTimeoutError(endpoint_url="https://lambda"),
        ConnectionClosedError(endpoint_url="https://lambda"),
    ],
    ids=["read-timeout", "connection-closed"],
)
def test_a_lost_answer_is_never_sent_again(lost: BaseException) -> None:
    # Given an invocation whose request was sent and whose answer never came: the function may
    # have run (and may still be running)
    client = ScriptedClient(lost, FunctionAnswer(b"1"))
    adapter, pauses = invoker(client)

    # When it is invoked
    with pytest.raises(FunctionInvokeFailed) as failed:
        adapter.invoke(ARN, EVENT, deadline=in_a_minute())

    # Then it is not sent again here: the attempt fails retryably, and Jobline's own backoff
    # decides when the job runs again (at least once, as every attempt)
    assert (failed.value.error_type, failed.value.retryable) == (OUTCOME_UNKNOWN, True)
    assert (len(client.requests), pauses) == (1, [])


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (404, "ResourceNotFoundException", False),
        (403, "AccessDeniedException", False),
        (413, "RequestTooLargeException", False),
        (400, "InvalidRequestContentException", False),
        (409, "ResourceConflictException", True),
    ],
)
def test_a_refusal_is_not_tried_again_and_fails_the_job_unless_it_may_pass(
    status: int, code: str, retryable: bool
) -> None:
    client = ScriptedClient(lambda_error(status, code))
    adapter, pauses = invoker(client)

    with pytest.raises(FunctionInvokeFailed) as failed:
        adapter.invoke(ARN, EVENT, deadline=in_a_minute())

    assert (failed.value.error_type, failed.value.retryable) == (code, retryable)
    assert (len(client.requests), pauses) == (1, [])


# ---------------------------------------------------------------------- the client
@pytest.fixture
def fresh_clients() -> Iterator[None]:
    bootstrap.reset()
    yield
    bootstrap.reset()


def test_the_lambda_client_waits_as_long_as_a_function_runs_and_tries_once(
    fresh_clients: None,
) -> None:
    client = bootstrap.lambda_client()
    config: Any = client.meta.config

    # A function answers when it returns (up to Lambda's 15 minutes), and botocore never sends
    # an invocation twice (a resend after a read timeout would run it again)
    assert config.read_timeout == LAMBDA_MAX_TIMEOUT_S
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.tcp_keepalive is True
    # ... while every other client keeps the short timeouts that fit a function's timeout
    sqs_config: Any = bootstrap.sqs_client().meta.config
    assert sqs_config.read_timeout == 1.5
    # And it is created once per execution environment
    assert bootstrap.lambda_client() is client


@pytest.mark.parametrize(
    ("variables", "endpoint"),
    [
        ({}, "https://lambda.us-east-1.amazonaws.com"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5055"}, "http://127.0.0.1:5055"),
        (
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:5055",
                "JOBLINE_LAMBDA_ENDPOINT_URL": "http://127.0.0.1:3001",
            },
            "http://127.0.0.1:3001",
        ),
        ({"JOBLINE_LAMBDA_ENDPOINT_URL": ""}, "https://lambda.us-east-1.amazonaws.com"),
    ],
)
def test_the_lambda_client_points_at_its_own_endpoint_when_one_is_set(
    fresh_clients: None,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    endpoint: str,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    assert bootstrap.lambda_client().meta.endpoint_url == endpoint
    # (the other clients keep AWS_ENDPOINT_URL)
    assert bootstrap.sqs_client().meta.endpoint_url != "http://127.0.0.1:3001"
