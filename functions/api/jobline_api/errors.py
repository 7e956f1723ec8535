"""The one place errors become HTTP answers. Every error body is `{"detail": ...}`.

- domain errors (`jobline.errors`): `STATUS_BY_ERROR`; an invalid cursor says to start again;
- a body that is not a JSON object sent as JSON (not JSON, not UTF-8, another or no content
  type, no body at all): 400 `BODY_DETAIL`; a JSON body of the wrong shape: 422, field by field;
- anything else FastAPI or Starlette refuse (unknown route, method): their status, as JSON;
- a bug: 500 without internals, logged with its traceback.
"""

from __future__ import annotations

import email.message
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from jobline.errors import (
    ConfigurationError,
    IdempotencyConflict,
    InvalidCursor,
    InvalidJobState,
    InvalidPayload,
    JoblineError,
    JobNotFound,
    PayloadTooLarge,
    QueueUnavailable,
    RequestTooLarge,
    StorageUnavailable,
    SubmitOutcomeUnknown,
    Unauthenticated,
    UnknownJobType,
    UploadNotFound,
    echoed,
)
from jobline.logging import get_logger
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = get_logger(__name__)

BODY_DETAIL = "the body must be a JSON object (Content-Type: application/json)"
"""400: the request's body could not be read as JSON at all."""
CURSOR_DETAIL = (
    "invalid cursor: it was changed, belongs to another listing (owner, status, type) or was "
    "issued before an upgrade; start from the first page (the same request without `cursor`)"
)
"""400: a cursor this version cannot resume from."""
_BODY_PROBLEMS = frozenset({"json_invalid", "missing", "model_attributes_type"})
"""What FastAPI reports at `("body",)` when it could not read a JSON object: undecodable JSON,
no body, or (with a content type that is not JSON) the raw bytes it kept instead."""

STATUS_BY_ERROR: dict[type[JoblineError], int] = {
    JobNotFound: 404,
    InvalidJobState: 409,
    IdempotencyConflict: 409,
    UnknownJobType: 422,
    InvalidPayload: 422,
    PayloadTooLarge: 413,
    RequestTooLarge: 413,
    UploadNotFound: 400,
    InvalidCursor: 400,
    Unauthenticated: 401,
    QueueUnavailable: 503,
    StorageUnavailable: 503,
    ConfigurationError: 503,
}

UNUSABLE_CONFIGURATION = (
    "this deployment cannot serve the request: its configuration is refused "
    "(the function's log says why)"
)
"""What a caller is told of a ConfigurationError (e.g. a weak cursor key, found when a listing
first needs it): the reason goes to the log, for the operator, not to every caller."""


def _detail(exc: JoblineError) -> Any:
    if isinstance(exc, ConfigurationError):
        return UNUSABLE_CONFIGURATION
    if isinstance(exc, InvalidPayload):
        return [{**err, "loc": ["body", *err["loc"]]} for err in exc.errors]
    if isinstance(exc, UnknownJobType):
        return [
            {"loc": ["body", "type"], "msg": exc.message, "type": "unknown_job_type"}
        ]
    if isinstance(exc, UploadNotFound):
        return [
            {
                "loc": ["body", "payload_upload"],
                "msg": exc.message,
                "type": "unknown_upload",
            }
        ]
    if isinstance(exc, InvalidCursor):
        return CURSOR_DETAIL
    return exc.message


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    """Map a domain error to its status code."""
    assert isinstance(exc, JoblineError)
    status = next(
        (code for cls, code in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 500
    )
    if isinstance(exc, ConfigurationError):
        log.error(
            "http.configuration_refused",
            error_type=type(exc).__name__,
            reason=exc.message,
            status_code=status,
            path=echoed(request.url.path),
        )
    else:
        log.info(
            "http.domain_error",
            error_type=type(exc).__name__,
            status_code=status,
            path=echoed(request.url.path),
        )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body: dict[str, Any] = {"detail": _detail(exc)}
    if isinstance(exc, SubmitOutcomeUnknown):
        # The job may be stored (and then it runs): say under which id, so the caller can look.
        body["job_id"] = exc.job_id
        root = str(request.scope.get("root_path", "")).rstrip(
            "/"
        )  # `/{stage}`, jobline_api.stage
        headers = {"Location": f"{root}/jobs/{exc.job_id}", "Retry-After": "1"}
    return JSONResponse(body, status_code=status, headers=headers)


def _sends_json(request: Request) -> bool:
    """Whether the request says its body is JSON (`application/json`, `application/*+json`),
    as FastAPI decides whether to parse it."""
    value = request.headers.get("content-type")
    if not value:
        return False
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _unreadable_body(request: Request, errors: list[dict[str, Any]]) -> bool:
    """Whether FastAPI's errors say the body was no JSON it could read (400), rather than a JSON
    value of the wrong shape (422)."""
    for err in errors:
        if err["type"] == "json_invalid":
            return True
        # No body at all, or bytes kept as they came because they were not sent as JSON; a JSON
        # array or string sent as JSON is the wrong shape (422).
        if (
            tuple(err["loc"]) == ("body",)
            and err["type"] in _BODY_PROBLEMS
            and (err["type"] == "missing" or not _sends_json(request))
        ):
            return True
    return False


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with field-level details (location, message, type), without echoing the input; 400
    `BODY_DETAIL` when there was no JSON body to check."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if _unreadable_body(request, errors):
        return JSONResponse({"detail": BODY_DETAIL}, status_code=400)
    detail = [
        {
            "loc": [
                echoed(part) if isinstance(part, str) else part for part in err["loc"]
            ],
            "msg": err["msg"],
            "type": err["type"],
        }
        for err in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Framework errors (404 route, 405) as JSON. FastAPI's only 400 is a body it could not
    parse (not UTF-8): the same answer as any unreadable body."""
    assert isinstance(exc, StarletteHTTPException)
    detail = BODY_DETAIL if exc.status_code == 400 else exc.detail
    return JSONResponse(
        {"detail": detail}, status_code=exc.status_code, headers=exc.headers
    )


class UnexpectedErrors:
    """A bug: logged once, with its traceback (one redacted JSON line), and answered 500 without
    internals. An ASGI middleware rather than an `Exception` handler, which Starlette calls and
    then raises again: the Lambda adapter (Mangum) would log the same exception a second time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.exception(
                "http.unhandled_error",
                error_type=type(exc).__name__,
                path=echoed(str(scope.get("path", ""))),
            )
            if started:  # the answer has begun: nothing to add, the connection ends
                return
            response = JSONResponse({"detail": "internal error"}, status_code=500)
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register every handler on the app."""
    app.add_exception_handler(JoblineError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(UnexpectedErrors)
