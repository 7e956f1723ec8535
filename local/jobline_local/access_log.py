"""The local API's request log: what API Gateway's access log and the API function's per-invocation
log context give a deployed request."""

from __future__ import annotations

import time
import uuid

from jobline.logging import bind_invocation, get_logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = get_logger(__name__)


class AccessLog:
    """ASGI wrapper: a fresh log context per request (as Lambda's handler binds one), one line each."""

    def __init__(self, app: ASGIApp, function_name: str) -> None:
        self.app = app
        self.function_name = function_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bind_invocation(str(uuid.uuid4()), self.function_name)
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
