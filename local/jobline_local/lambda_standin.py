"""A stand-in for Lambda's Invoke API on loopback: Python callables served as functions, so the
worker's real Lambda client (botocore, at JOBLINE_LAMBDA_ENDPOINT_URL) invokes them as it would
invoke a team's function on AWS. The tests run job types whose target is a Lambda ARN against it.

It speaks what botocore's `lambda` client sends and reads for `Invoke` (API version 2015-03-31):
`POST /2015-03-31/functions/{FunctionName}/invocations` (the name, or a whole ARN, URL-encoded; an
alias or version after it, or as `?Qualifier=`), the JSON event as the body, and answers 200 with
the function's JSON result, or 200 with `X-Amz-Function-Error: Unhandled` and Lambda's error
document when the function raised (`jobline.targets.call_like_lambda` runs it, as Lambda's Python
runtime would). Told to (`fail_next`), it answers an error of Lambda's own instead, without running
the function: 429 `TooManyRequestsException`, a 5xx `ServiceException`, or any status and code;
`drop_next` runs the function and closes the connection without an answer (a lost answer). An
unknown function is 404 `ResourceNotFoundException`, as on Lambda.

    with LambdaStandIn() as lambda_:
        arn = lambda_.add("resize", resize)            # arn:aws:lambda:us-east-1:...:resize
        os.environ["JOBLINE_LAMBDA_ENDPOINT_URL"] = lambda_.endpoint
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from jobline.targets import FunctionAnswer, LocalLambdaContext, call_like_lambda

ACCOUNT = "123456789012"
INVOKE_PATH = re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations")
FUNCTION_REF = re.compile(
    r"(?:arn:[^:]+:lambda:[^:]+:\d{12}:function:)?(?P<name>[A-Za-z0-9_-]+)"
    r"(?::(?P<qualifier>[$A-Za-z0-9_-]+))?"
)
LAMBDA_ERROR_MESSAGES = {
    "TooManyRequestsException": "Rate Exceeded.",
    "ServiceException": "Lambda encountered an internal error.",
}


@dataclass(frozen=True)
class Invocation:
    """One request the stand-in received."""

    name: str
    qualifier: str | None
    invocation_type: str
    event: Any
    """The decoded body (None when it was not JSON)."""
    ran: bool
    """Whether the function was run (False: answered with a Lambda error instead)."""


@dataclass
class _Function:
    call: Callable[[Any, Any], Any]
    timeout_s: float
    failures: list[tuple[int, str]] = field(default_factory=list)
    drops: int = 0


class LambdaStandIn:
    """Lambda's Invoke API for Python callables, on `host` (loopback) and a free port."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, region: str = "us-east-1"
    ) -> None:
        self.region = region
        self.invocations: list[Invocation] = []
        self._functions: dict[str, _Function] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The URL botocore's `endpoint_url` takes (JOBLINE_LAMBDA_ENDPOINT_URL)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def arn(self, name: str) -> str:
        """The ARN of function `name` here (any alias or version after it is served too)."""
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}"

    def add(
        self, name: str, call: Callable[[Any, Any], Any], *, timeout_s: float = 60.0
    ) -> str:
        """Serve `call(event, context)` as function `name`; its ARN."""
        with self._lock:
            self._functions[name] = _Function(call, timeout_s)
        return self.arn(name)

    def fail_next(
        self, name: str, status: int = 429, code: str | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` invocations of `name` with a Lambda error (429: throttled,
        5xx: a service error) without running the function."""
        error = code or (
            "TooManyRequestsException" if status == 429 else "ServiceException"
        )
        with self._lock:
            self._functions[name].failures.extend([(status, error)] * times)

    def drop_next(self, name: str, times: int = 1) -> None:
        """Run the next `times` invocations of `name`, then close the connection unanswered."""
        with self._lock:
            self._functions[name].drops += times

    def runs(self, name: str) -> list[Any]:
        """The events function `name` was run with, in order."""
        with self._lock:
            return [i.event for i in self.invocations if i.name == name and i.ran]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LambdaStandIn:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="lambda-stand-in", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> LambdaStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ requests
    def _answer(
        self, path: str, invocation_type: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes] | None:
        """(status, headers, body) for one request; None: close the connection unanswered."""
        url = urlsplit(path)
        match = INVOKE_PATH.fullmatch(url.path)
        ref = FUNCTION_REF.fullmatch(unquote(match["name"])) if match else None
        if ref is None:
            return _lambda_error(
                404, "UnknownOperationException", f"no route {url.path}"
            )
        name = ref["name"]
        qualifier = ref["qualifier"] or parse_qs(url.query).get("Qualifier", [None])[0]
        try:
            event = json.loads(body) if body else None
        except ValueError:
            event = None
        with self._lock:
            function = self._functions.get(name)
            failure = (
                function.failures.pop(0) if function and function.failures else None
            )
            drop = function is not None and failure is None and function.drops > 0
            if drop and function is not None:
                function.drops -= 1
            self.invocations.append(
                Invocation(
                    name,
                    qualifier,
                    invocation_type,
                    event,
                    ran=function is not None and failure is None,
                )
            )
        if function is None:
            return _lambda_error(
                404,
                "ResourceNotFoundException",
                f"Function not found: {self.arn(name)}",
            )
        if failure is not None:
            status, code = failure
            return _lambda_error(status, code, LAMBDA_ERROR_MESSAGES.get(code, code))
        if invocation_type != "RequestResponse":
            return _lambda_error(
                400,
                "InvalidParameterValueException",
                "the stand-in answers RequestResponse invocations only",
            )
        context = LocalLambdaContext(
            function_name=name, deadline=time.time() + function.timeout_s
        )
        answer = call_like_lambda(function.call, body, context)
        if drop:
            return None
        return 200, _answer_headers(answer), answer.payload

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                invocation_type = self.headers.get(
                    "X-Amz-Invocation-Type", "RequestResponse"
                )
                answer = stand_in._answer(self.path, invocation_type, body)
                if answer is None:
                    self.close_connection = True
                    self.connection.close()
                    return
                status, headers, payload = answer
                self.send_response(status)
                for header, value in headers.items():
                    self.send_header(header, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Log nothing (the tests read the worker's lines)."""

        return Handler


def _answer_headers(answer: FunctionAnswer) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Amz-Executed-Version": "$LATEST",
    }
    if answer.function_error is not None:
        headers["X-Amz-Function-Error"] = answer.function_error
    return headers


def _lambda_error(
    status: int, code: str, message: str
) -> tuple[int, dict[str, str], bytes]:
    """An error of Lambda's own, as its REST-JSON protocol answers one."""
    body = json.dumps({"Type": "User", "message": message}).encode()
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": code}, body
