"""Lambda entry point of the API function (template.yaml: `jobline_api.handler.lambda_handler`)."""

from __future__ import annotations

from typing import Any

from jobline.logging import bind_invocation, configure
from mangum import Mangum

from jobline_api.app import create_app

configure()
app = create_app()
_asgi = Mangum(app, lifespan="auto")


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
    response: dict[str, Any] = _asgi(strip_stage(event), context)
    return response
