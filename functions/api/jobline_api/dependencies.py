"""Request-scoped inputs: the service, the caller's identity, the root path (a named stage).

`async def` although none of them awaits: FastAPI runs a plain `def` dependency in its thread
pool, one hop per dependency per request (see docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from jobline.errors import RequestTooLarge, Unauthenticated
from jobline.limits import MAX_REQUEST_BODY_BYTES
from jobline.service import JobService
from jobline.validation import identity_problem

DEV_USER_HEADER = "x-dev-user"


async def get_job_service(request: Request) -> JobService:
    """The service attached to the app (`attach_environment`; tests swap it with `dependency_overrides`)."""
    service: JobService = request.app.state.service
    return service


def _event(request: Request) -> dict[str, Any]:
    event = request.scope.get("aws.event")
    return event if isinstance(event, dict) else {}


def _identity(identity: str, source: str) -> str:
    """`identity` exactly as sent, or 401 saying why it is not one (`identity_problem`)."""
    problem = identity_problem(identity)
    if problem is not None:
        raise Unauthenticated(f"the {source} {problem}")
    return identity


async def current_owner(request: Request) -> str:
    """The caller: the JWT authorizer's `sub` claim, or (when enabled) the development header,
    used as given: an identity that is too long, padded with whitespace or not valid text is 401,
    never trimmed or cut into someone else's."""
    claims = (
        _event(request)
        .get("requestContext", {})
        .get("authorizer", {})
        .get("jwt", {})
        .get("claims", {})
    )
    subject = claims.get("sub") if isinstance(claims, dict) else None
    if isinstance(subject, str) and subject:
        return _identity(subject, "token's subject")
    if request.app.state.allow_dev_identity:
        dev_user = request.headers.get(DEV_USER_HEADER)
        if dev_user:
            return _identity(dev_user, "X-Dev-User identity")
    raise Unauthenticated()


async def base_path(request: Request) -> str:
    """Where the app is mounted: the ASGI root path (`/{stage}` behind a named HTTP API stage,
    `jobline_api.stage`), empty on `$default` and locally."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


async def body_within_limit(request: Request) -> None:
    """413 for a body over `limits.MAX_REQUEST_BODY_BYTES`, in AWS and locally alike: past it, a
    body may not fit in the Lambda event that carries it to the function (6 MB, escaped)."""
    size = len(await request.body())
    if size > MAX_REQUEST_BODY_BYTES:
        raise RequestTooLarge(size, MAX_REQUEST_BODY_BYTES)


def only_query(*names: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing (422) query parameters other than `names`: a misspelt filter
    (`?stauts=failed`) is an error, not a listing of everything."""
    known = frozenset(names)

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", name),
                        "msg": "Unknown query parameter",
                        "type": "extra_forbidden",
                    }
                    for name in unknown
                ]
            )

    return check
