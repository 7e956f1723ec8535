"""Named HTTP API stages: API Gateway puts `/{stage}` in front of every path it hands the function.

The app is served with the stage as its ASGI `root_path` and the path left whole (the ASGI way to
mount an app under a prefix): Starlette routes on the path below the root, and everything that
builds a URL from the scope (trailing-slash redirects, `/docs` pointing at `openapi.json`, the
spec's `servers`, `Location`) keeps the stage. Mangum (0.22) leaves `root_path` empty, and its
`api_gateway_base_path` only strips a fixed prefix, so this middleware sets it per event.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


def stage_prefix(event: Any) -> str:
    """`/{stage}` for an event of a named stage, empty for `$default` (and outside Lambda)."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    stage = context.get("stage") if isinstance(context, dict) else None
    if not isinstance(stage, str) or stage in ("", "$default"):
        return ""
    return f"/{stage}"


class StageRootPath:
    """ASGI middleware: behind a named stage, the stage becomes the request's `root_path`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            prefix = stage_prefix(scope.get("aws.event"))
            path: str = scope["path"]
            if prefix and (path == prefix or path.startswith(prefix + "/")):
                scope = {**scope, "root_path": prefix}
        await self.app(scope, receive, send)
