"""Lambda entry point of the API function (template.yaml: `jobline_api.handler.lambda_handler`)."""

from __future__ import annotations

from typing import Any

from jobline.logging import bind_invocation, configure
from mangum import Mangum

from jobline_api.app import create_app

configure()
app = create_app()
_asgi = Mangum(app, lifespan="auto")


def strip_stage(event: dict[str, Any]) -> dict[str, Any]:
    """Behind a named stage, HTTP API puts `/{stage}` in `rawPath`; route on the path without it."""
    stage = event.get("requestContext", {}).get("stage")
    raw_path = event.get("rawPath")
    if (
        not isinstance(stage, str)
        or stage in ("", "$default")
        or not isinstance(raw_path, str)
    ):
        return event
    prefix = f"/{stage}"
    if raw_path == prefix or raw_path.startswith(prefix + "/"):
        return {**event, "rawPath": raw_path[len(prefix) :] or "/"}
    return event


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Bind the invocation's log context, then hand the event to the ASGI app."""
    bind_invocation(
        getattr(context, "aws_request_id", None),
        getattr(context, "function_name", None),
    )
    response: dict[str, Any] = _asgi(strip_stage(event), context)
    return response
