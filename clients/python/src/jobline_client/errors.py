"""Every error the client raises: one class per kind of API answer, all `JoblineClientError`.

No httpx exception escapes the client: transport failures become `ServiceUnavailable` (after the
retries) or `JoblineClientError`. `WaitTimeout`, which carries a `Job`, lives with the waiting that
raises it (`jobline_client.pacing`), so this module needs no model; `jobline_client` exports both."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


class JoblineClientError(Exception):
    """Base class of every error raised by `jobline_client`."""


def describe_detail(detail: Any) -> str:
    """An API error detail as one line: a message, or `loc: msg` per field-level error."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, Sequence) and all(
        isinstance(item, Mapping) and "msg" in item for item in detail
    ):
        return "; ".join(_describe_field(item) for item in detail)
    return json.dumps(detail, ensure_ascii=False)


def _describe_field(error: Mapping[str, Any]) -> str:
    loc = error.get("loc")
    where = (
        ".".join(str(part) for part in loc)
        if isinstance(loc, Sequence) and not isinstance(loc, str)
        else ""
    )
    return f"{where}: {error['msg']}" if where else str(error["msg"])


class ApiError(JoblineClientError):
    """The API answered with an error status. `detail` is the body's `detail` (a message or a
    list of field-level errors), or the whole body when it has none."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{status}: {describe_detail(detail)}")

    @property
    def message(self) -> str:
        """The detail as one line of text."""
        return describe_detail(self.detail)


class JobNotFound(ApiError):
    """404: no such job for this caller (unknown, malformed, expired or someone else's id)."""


class Conflict(ApiError):
    """409: the job's state does not allow this (cancel of a finished job, retry of a job that has
    not failed), or an idempotency key reused with another body."""


class InvalidRequest(ApiError):
    """400, 413 or 422: the request was refused as it is. `details` holds the field-level errors
    (`{"loc", "msg", "type"}` each) when the API gave them, else is empty."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(status, detail)
        self.details: list[Mapping[str, Any]] = (
            [item for item in detail if isinstance(item, Mapping)]
            if isinstance(detail, list)
            else []
        )


class Unauthorized(ApiError):
    """401 or 403: no identity (no token or dev user), or one the API does not accept."""


class ServiceUnavailable(JoblineClientError):
    """The service could not be reached, or kept answering 503 (or 429, 502, 504) through every
    retry. `status` is the last answer's status, None when there was no answer at all."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None):
        self.status = status
        self.detail = detail
        super().__init__(message)


class InvalidResponse(JoblineClientError):
    """The API answered, but not with what the route returns (not JSON, or not the right shape)."""


class DataTransferFailed(JoblineClientError):
    """A payload's upload or a payload's or result's download (presigned, straight to the data
    bucket) was refused, or brought back other bytes than the job says (`status` None). The
    message never carries the URL's signature."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Answers worth trying again: throttled, a gateway error, or the service briefly unavailable."""


def error_for(status: int, body: Any, *, job_route: bool) -> JoblineClientError:
    """The exception for an error answer. `job_route`: the path names one job, so a 404 means
    that job is not there (elsewhere a 404 means a wrong base URL)."""
    detail = body["detail"] if isinstance(body, Mapping) and "detail" in body else body
    if isinstance(body, Mapping) and "detail" not in body and "message" in body:
        # API Gateway's own answers (its JWT authorizer, throttling): {"message": "..."}
        detail = body["message"]
    if status == 404 and job_route:
        return JobNotFound(status, detail)
    if status == 409:
        return Conflict(status, detail)
    if status in (400, 413, 422):
        return InvalidRequest(status, detail)
    if status in (401, 403):
        return Unauthorized(status, detail)
    if status in RETRYABLE_STATUSES:
        return ServiceUnavailable(
            f"the service answered {status}: {describe_detail(detail)}", status, detail
        )
    return ApiError(status, detail)
