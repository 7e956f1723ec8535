"""Named HTTP API stages: API Gateway puts `/{stage}` in front of every path it hands the function."""

from __future__ import annotations

from typing import Any


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
