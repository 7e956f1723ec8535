"""Correlation ids: `X-Correlation-Id` on a request (a new one when it is absent or unusable) is
bound to every log line of the request, stored with a submitted job, and sent back as a header."""

from __future__ import annotations

import re
import uuid

from fastapi import Request
from jobline.logging import bound
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-correlation-id"
USABLE = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
"""What a caller's id may look like (it goes into logs, items and headers); anything else is
replaced by a new id, never echoed."""


class CorrelationIds:
    """ASGI middleware: one correlation id per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (
                value.decode("latin-1")
                for name, value in scope.get("headers", [])
                if name.decode("latin-1").lower() == HEADER
            ),
            "",
        )
        correlation_id = given if USABLE.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation_id

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != HEADER.encode()
                ]
                headers.append((HEADER.encode(), correlation_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with bound(correlation_id=correlation_id):
            await self.app(scope, receive, send_with_header)


async def correlation_id(request: Request) -> str:
    """The request's correlation id (set by `CorrelationIds`)."""
    value = getattr(request.state, "correlation_id", None)
    return value if isinstance(value, str) else uuid.uuid4().hex
