"""`http.request`: one HTTP call; a non-2xx answer or a network error is a retryable failure.

Connections obey the deployment's egress policy (`jobline.egress`: public addresses only unless
allow-listed, checked on the address actually connected to); a refused address and a redirect
(never followed) fail the job at once.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from jobline.egress import EgressPolicy, guarded_opener
from jobline.registry import (
    DeadlineExceeded,
    JobContext,
    JobHandlerError,
    JobType,
    PermanentJobError,
)

NAME = "http.request"
MAX_BODY_BYTES = 64 * 1024


class HttpRequestInput(BaseModel):
    """The request to make."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=600, allow_inf_nan=False)


class HttpStatusError(JobHandlerError):
    """The server answered with a non-2xx status."""


class HttpNetworkError(JobHandlerError):
    """The request did not get an answer (DNS, connection, timeout)."""


class HttpRedirectNotFollowed(PermanentJobError):
    """The server answered with a redirect; redirects are not followed."""


@dataclass(frozen=True)
class HttpRequestOptions:
    """How a deployment runs `http.request`."""

    egress: EgressPolicy = field(default_factory=EgressPolicy)


def _read_capped(response: Any) -> tuple[str, bool]:
    data: bytes = response.read(MAX_BODY_BYTES + 1)
    truncated = len(data) > MAX_BODY_BYTES
    return data[:MAX_BODY_BYTES].decode("utf-8", errors="replace"), truncated


def run_http_request(
    payload: HttpRequestInput,
    context: JobContext,
    options: HttpRequestOptions | None = None,
) -> dict[str, Any]:
    """Make the request; return `{"status", "headers", "body", "truncated"}` for a 2xx answer."""
    options = options or HttpRequestOptions()
    remaining = context.remaining_seconds()
    if remaining <= 0:
        raise DeadlineExceeded("no time left before the deadline to make the request")
    timeout = min(payload.timeout_s, remaining)
    data = payload.body.encode("utf-8") if payload.body is not None else None
    request = urllib.request.Request(
        str(payload.url), data=data, headers=payload.headers, method=payload.method
    )
    opener = guarded_opener(options.egress)
    try:
        with opener.open(request, timeout=timeout) as response:
            body, truncated = _read_capped(response)
            return {
                "status": response.status,
                "headers": dict(response.headers.items()),
                "body": body,
                "truncated": truncated,
            }
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            raise HttpRedirectNotFollowed(
                f"{payload.method} {payload.url} answered {exc.code} (a redirect, to "
                f"{exc.headers.get('Location')}); redirects are not followed"
            ) from exc
        body, _ = _read_capped(exc)
        raise HttpStatusError(
            f"{payload.method} {payload.url} answered {exc.code}: {body[:200]}"
        ) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise HttpNetworkError(f"{payload.method} {payload.url} failed: {exc}") from exc


def job_type(options: HttpRequestOptions | None = None) -> JobType[HttpRequestInput]:
    """`http.request` as a deployment runs it (`options`: its egress policy)."""
    return JobType(
        name=NAME,
        description="Makes one HTTP request; the result is {status, headers, body} "
        "(body cut at 64 KiB). Public addresses only unless allow-listed; redirects "
        "are not followed.",
        input_model=HttpRequestInput,
        handler=partial(run_http_request, options=options or HttpRequestOptions()),
    )


JOB_TYPE = job_type()
"""`http.request` with the default policy: public addresses only."""
