"""`http.request`'s handler: one HTTP call; a non-2xx answer or a network error is a retryable failure.

Connections obey the deployment's egress policy (`jobline.egress`: public addresses only unless
allow-listed, checked on the address actually connected to); a refused address and a redirect
(never followed) fail the job at once. Errors name the URL without its credentials (userinfo and
query string redacted) and never quote the remote body; secret response headers are redacted in
the result (`jobline.redaction`).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from jobline.config import Settings, get_settings
from jobline.egress import EgressPolicy, guarded_opener
from jobline.redaction import Redaction, redact_text, redact_url
from jobline.registry import (
    DeadlineExceeded,
    JobContext,
    JobHandlerError,
    JobType,
    PermanentJobError,
)
from pydantic import AnyHttpUrl, TypeAdapter, ValidationError

from jobline_examples import HTTP_REQUEST
from jobline_examples.inputs import HttpRequestInput
from jobline_examples.limits import MAX_BODY_BYTES

NAME = HTTP_REQUEST.name
HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


class HttpStatusError(JobHandlerError):
    """The server answered with a non-2xx status."""


class HttpNetworkError(JobHandlerError):
    """The request did not get an answer (DNS, connection, timeout)."""


class HttpInvalidUrl(PermanentJobError):
    """The URL fits the input schema's pattern but is not one (e.g. a port above 65535)."""


class HttpRedirectNotFollowed(PermanentJobError):
    """The server answered with a redirect; redirects are not followed."""


@dataclass(frozen=True)
class HttpRequestOptions:
    """How a deployment runs `http.request`."""

    egress: EgressPolicy = field(default_factory=EgressPolicy)
    redaction: Redaction = field(default_factory=Redaction)


def _read_capped(response: Any) -> tuple[str, bool]:
    data: bytes = response.read(MAX_BODY_BYTES + 1)
    truncated = len(data) > MAX_BODY_BYTES
    return data[:MAX_BODY_BYTES].decode("utf-8", errors="replace"), truncated


def _parsed_url(text: str) -> AnyHttpUrl:
    try:
        return HTTP_URL.validate_python(text)
    except ValidationError as exc:
        problem = exc.errors(include_url=False, include_input=False)[0]["msg"]
        raise HttpInvalidUrl(
            f"{redact_url(text)} is not an http(s) URL: {problem}"
        ) from None


def _without_userinfo(payload: HttpRequestInput) -> tuple[str, dict[str, str]]:
    """The URL without `user:password@`, which becomes Basic authorization (unless the request
    has an Authorization header of its own)."""
    url = _parsed_url(payload.url)
    headers = dict(payload.headers)
    if url.username is None and url.password is None:
        return str(url), headers
    credentials = f"{unquote(url.username or '')}:{unquote(url.password or '')}"
    if not any(name.lower() == "authorization" for name in headers):
        headers["Authorization"] = "Basic " + b64encode(credentials.encode()).decode()
    parts = urlsplit(str(url))
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc)), headers


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
    url, headers = _without_userinfo(payload)
    request = urllib.request.Request(
        url, data=data, headers=headers, method=payload.method
    )
    opener = guarded_opener(options.egress)
    shown = f"{payload.method} {redact_url(str(payload.url))}"
    try:
        with opener.open(request, timeout=timeout) as response:
            body, truncated = _read_capped(response)
            return {
                "status": response.status,
                "headers": options.redaction.headers(dict(response.headers.items())),
                "body": body,
                "truncated": truncated,
            }
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            location = exc.headers.get("Location")
            target = f", to {redact_url(location)}" if location else ""
            raise HttpRedirectNotFollowed(
                f"{shown} answered {exc.code} (a redirect{target}); redirects are not "
                "followed"
            ) from exc
        raise HttpStatusError(f"{shown} answered {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise HttpNetworkError(f"{shown} failed: {redact_text(str(reason))}") from exc


def options_of(settings: Settings) -> HttpRequestOptions:
    """The deployment's policy: its allow-listed networks (JOBLINE_HTTP_ALLOW_NETWORKS) and the
    headers it redacts besides the standard ones (JOBLINE_REDACT_HEADERS)."""
    return HttpRequestOptions(
        egress=EgressPolicy(
            allow=settings.http_allow_networks,
            runtime_api=settings.lambda_runtime_api,
        ),
        redaction=Redaction.of(settings.redact_headers),
    )


def run(payload: HttpRequestInput, context: JobContext) -> dict[str, Any]:
    """The handler `HTTP_REQUEST` names: the request under this deployment's settings."""
    return run_http_request(payload, context, options_of(get_settings()))


def job_type(options: HttpRequestOptions) -> JobType[HttpRequestInput]:
    """`http.request` under `options` rather than the deployment's settings (tests, scripts)."""
    return replace(HTTP_REQUEST, handler=partial(run_http_request, options=options))
