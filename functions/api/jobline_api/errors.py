"""The one place domain errors become HTTP answers. Every error body is `{"detail": ...}`."""

from __future__ import annotations

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
    StorageUnavailable,
    SubmitOutcomeUnknown,
    Unauthenticated,
    UnknownJobType,
    echoed,
)
from jobline.logging import get_logger
from starlette.exceptions import HTTPException as StarletteHTTPException

log = get_logger(__name__)

STATUS_BY_ERROR: dict[type[JoblineError], int] = {
    JobNotFound: 404,
    InvalidJobState: 409,
    IdempotencyConflict: 409,
    UnknownJobType: 422,
    InvalidPayload: 422,
    PayloadTooLarge: 413,
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


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with field-level details (location, message, type), without echoing the input."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {
            "loc": [
                echoed(part) if isinstance(part, str) else part for part in err["loc"]
            ],
            "msg": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Framework errors (404 route, 405, 400 unparseable body) as JSON."""
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered without internals."""
    log.exception(
        "http.unhandled_error",
        error_type=type(exc).__name__,
        path=echoed(request.url.path),
    )
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install(app: FastAPI) -> None:
    """Register every handler on the app."""
    app.add_exception_handler(JoblineError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
