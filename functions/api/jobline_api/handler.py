"""Lambda entry point of the API function (template.yaml: `jobline_api.handler.lambda_handler`).

On Lambda, importing this module is the init phase, and it does the heavy work once per
execution environment, before the first request and (with SnapStart) before the snapshot: the
app, the service with its settings, botocore session and clients, and one request through the app
(FastAPI builds its per-route state on the first request it routes). A restored snapshot renews
what restored environments must not share in `after_restore`. See docs/benchmarks.md.
"""

from __future__ import annotations

import gc

# Init allocates what lives as long as the execution environment (modules, classes, schemas,
# clients) and next to no garbage, yet every automatic collection would walk all of it: collect
# nothing until init is done, then freeze what it built out of later collections (bottom).
gc.disable()

import random  # noqa: E402
from typing import Any  # noqa: E402

from jobline.bootstrap import get_service, reset  # noqa: E402
from jobline.config import lambda_initialization_type  # noqa: E402
from jobline.logging import bind_invocation, configure  # noqa: E402
from mangum import Mangum  # noqa: E402
from snapshot_restore_py import register_after_restore  # type: ignore[import-untyped]  # noqa: E402

from jobline_api.app import attach_environment, create_app  # noqa: E402

configure()
app = create_app()
# No lifespan cycle around every invocation: `lambda_handler` attaches the cached service itself.
_asgi = Mangum(app, lifespan="off")

PRIMING_EVENT: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "GET /health",
    "rawPath": "/health",
    "rawQueryString": "",
    "headers": {"host": "init.jobline.invalid"},
    "requestContext": {
        "http": {
            "method": "GET",
            "path": "/health",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
        },
        "routeKey": "GET /health",
        "stage": "$default",
    },
    "isBase64Encoded": False,
}
"""GET /health, answered by the app itself (no AWS call): it primes the request path at init."""


def _without_prefix(path: Any, prefix: str) -> Any:
    if isinstance(path, str) and (path == prefix or path.startswith(prefix + "/")):
        return path[len(prefix) :] or "/"
    return path


def strip_stage(event: dict[str, Any]) -> dict[str, Any]:
    """Behind a named stage, HTTP API puts `/{stage}` in `rawPath` and `requestContext.http.path`
    (the one Mangum routes on); route on the path without it."""
    context = event.get("requestContext", {})
    stage = context.get("stage")
    if not isinstance(stage, str) or stage in ("", "$default"):
        return event
    prefix = f"/{stage}"
    stripped = dict(event)
    if "rawPath" in event:
        stripped["rawPath"] = _without_prefix(event["rawPath"], prefix)
    http = context.get("http")
    if isinstance(http, dict):
        path = _without_prefix(http.get("path"), prefix)
        stripped["requestContext"] = {**context, "http": {**http, "path": path}}
    return stripped


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Bind the invocation's log context, then hand the event to the ASGI app."""
    bind_invocation(
        getattr(context, "aws_request_id", None),
        getattr(context, "function_name", None),
    )
    attach_environment(app)
    response: dict[str, Any] = _asgi(strip_stage(event), context)
    return response


def prepare() -> None:
    """Build this environment's service (settings, session, clients) and attach it to the app."""
    get_service()
    attach_environment(app)


def initialize() -> None:
    """The init phase's work: `prepare()`, then prime the request path with one /health request."""
    prepare()
    response = lambda_handler(PRIMING_EVENT, None)
    if response["statusCode"] != 200:
        raise RuntimeError(f"the app failed its priming request: {response!r}")


def after_restore() -> None:
    """SnapStart resumed this environment from a snapshot other environments resume from too:
    reseed `random` (retry jitter), drop the session (its credentials) and the clients (their
    connections) with the service, and build them again before the first request."""
    random.seed()
    reset()
    prepare()


register_after_restore(after_restore)
if lambda_initialization_type() is not None:
    initialize()
gc.freeze()
gc.enable()
