"""Lambda events: the samples in `events/` (the one way tests load them), API Gateway HTTP API events
built by hand, and the JWT authorizer stand-in that puts a subject in front of the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def event_names(prefix: str = "") -> list[str]:
    """Names (file stems) of the sample events starting with `prefix`, sorted."""
    return sorted(
        path.stem
        for path in EVENTS_DIR.glob(f"{prefix}*.json")
        if path.name != "env.json"
    )


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of `events/<name>.json` (tests may change it freely)."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    return event


def http_api_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    sub: str | None = None,
    stage: str = "$default",
    query: str = "",
) -> dict[str, Any]:
    """A minimal API Gateway HTTP API (payload 2.0) event, as the Lambda integration sends it.

    `sub` becomes the JWT authorizer's subject claim; a named `stage` prefixes the paths.
    """
    full_path = path if stage == "$default" else f"/{stage}{path}"
    request_context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api1234567",
        "domainName": "api1234567.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "api1234567",
        "http": {
            "method": method,
            "path": full_path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.10",
            "userAgent": "unit-test",
        },
        "requestId": "req-0001",
        "routeKey": "$default",
        "stage": stage,
        "time": "15/Jan/2025:12:00:00 +0000",
        "timeEpoch": 1736942400000,
    }
    if sub is not None:
        request_context["authorizer"] = {
            "jwt": {"claims": {"sub": sub, "aud": "jobline-api"}, "scopes": None}
        }
    all_headers = {
        "host": "api1234567.execute-api.us-east-1.amazonaws.com",
        "x-forwarded-proto": "https",
    }
    if body is not None:
        all_headers["content-type"] = "application/json"
    all_headers.update({name.lower(): value for name, value in (headers or {}).items()})
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": full_path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": request_context,
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    return event


class JwtAuthorizerStandIn:
    """ASGI middleware standing in for the HTTP API's JWT authorizer, for in-process tests of the
    deployed app: a request with `Authorization: Bearer <token>` of a known token reaches the
    app with the token's `sub` in the Lambda event, where Mangum puts it (`scope["aws.event"]`);
    any other request is answered the way API Gateway answers it, 401 `{"message":
    "Unauthorized"}`. Routes the template leaves open (`/health`) pass as they are."""

    def __init__(
        self,
        app: Any,
        subjects: dict[str, str],
        open_paths: frozenset[str] = frozenset({"/health"}),
    ) -> None:
        self.app = app
        self.subjects = subjects
        """token -> the `sub` claim of the JWT it stands for."""
        self.open_paths = open_paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        scheme, _, token = (
            headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        )
        subject = self.subjects.get(token) if scheme.lower() == "bearer" else None
        if subject is None:
            refusal = JSONResponse(
                {"message": "Unauthorized"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
            await refusal(scope, receive, send)
            return
        claims = {"sub": subject, "aud": "jobline-api"}
        event = {
            "requestContext": {
                "stage": "$default",
                "authorizer": {"jwt": {"claims": claims, "scopes": None}},
            }
        }
        await self.app({**scope, "aws.event": event}, receive, send)
