"""Request-scoped inputs: the service, the caller's identity, the stage prefix.

`async def` although none of them awaits: FastAPI runs a plain `def` dependency in its thread
pool, one hop per dependency per request (see docs/benchmarks.md)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from jobline.errors import Unauthenticated
from jobline.service import JobService

DEV_USER_HEADER = "x-dev-user"


async def get_job_service(request: Request) -> JobService:
    """The service attached to the app (`attach_environment`; tests swap it with `dependency_overrides`)."""
    service: JobService = request.app.state.service
    return service


def _event(request: Request) -> dict[str, Any]:
    event = request.scope.get("aws.event")
    return event if isinstance(event, dict) else {}


async def current_owner(request: Request) -> str:
    """The caller: the JWT authorizer's `sub` claim, or (when enabled) the development header."""
    claims = (
        _event(request)
        .get("requestContext", {})
        .get("authorizer", {})
        .get("jwt", {})
        .get("claims", {})
    )
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if isinstance(subject, str) and subject:
        return subject
    if request.app.state.allow_dev_identity:
        dev_user = request.headers.get(DEV_USER_HEADER, "").strip()
        if dev_user:
            return dev_user[:256]
    raise Unauthenticated()


async def base_path(request: Request) -> str:
    """`/{stage}` behind a named HTTP API stage, empty on `$default` and locally."""
    stage = _event(request).get("requestContext", {}).get("stage")
    return (
        f"/{stage}" if isinstance(stage, str) and stage and stage != "$default" else ""
    )
