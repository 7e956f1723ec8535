"""httpx transports for the client tests: the API app in-process, and a wrapper that records every
request and can make the first ones fail the way networks and gateways do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.testclient import TestClient

from tests.support.fakes import FAKE_DATA_HOST, InMemoryBlobStore


class AppTransport(httpx.BaseTransport):
    """Blocking requests into an ASGI app, in-process, through Starlette's TestClient (httpx's own
    `ASGITransport` is async only); with `data`, requests to the fake data bucket's presigned
    URLs go to it, as they would go to S3. The TestClient's lifecycle belongs to whoever made
    it."""

    def __init__(
        self, test_client: TestClient, data: InMemoryBlobStore | None = None
    ) -> None:
        self._test_client = test_client
        self._data = data

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._data is not None and request.url.host == FAKE_DATA_HOST:
            return self._data.handle(request)
        answer = self._test_client.send(request)
        return httpx.Response(
            answer.status_code, headers=answer.headers, content=answer.content
        )


class AsyncAppTransport(httpx.AsyncBaseTransport):
    """`AppTransport`'s async twin: the app through httpx's `ASGITransport`, the fake data
    bucket's URLs to `data`."""

    def __init__(self, app: Any, data: InMemoryBlobStore) -> None:
        self._app = httpx.ASGITransport(app=app)
        self._data = data

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == FAKE_DATA_HOST:
            await request.aread()
            return self._data.handle(request)
        return await self._app.handle_async_request(request)


@dataclass(frozen=True)
class Answer:
    """Answer with this status and `{"detail": ...}` without reaching the app (a gateway, a
    throttle, an outage)."""

    status: int
    detail: str = "the service is briefly unavailable"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Refuse:
    """Fail to connect: the app never sees the request (`httpx.ConnectError`)."""


@dataclass(frozen=True)
class LoseAnswer:
    """Let the app handle the request, then lose its answer (`httpx.ReadTimeout`)."""


Fault = Answer | Refuse | LoseAnswer


@dataclass(frozen=True)
class Sent:
    """One request as it left the client."""

    method: str
    path: str
    query: dict[str, str]
    headers: httpx.Headers
    body: bytes


class _Script:
    def __init__(
        self,
        faults: list[Fault] | None = None,
        before: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        self.faults = list(faults or [])
        """Consumed one per request; once empty, requests go through."""
        self.before = before
        """Called with every request before it is handled (to move a job along between polls)."""
        self.sent: list[Sent] = []

    def _next_fault(self, request: httpx.Request) -> Fault | None:
        self.sent.append(
            Sent(
                request.method,
                request.url.path,
                dict(request.url.params),
                request.headers,
                request.content,
            )
        )
        if self.before is not None:
            self.before(request)
        return self.faults.pop(0) if self.faults else None

    @staticmethod
    def _answer(fault: Answer, request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            fault.status,
            json={"detail": fault.detail},
            headers=fault.headers,
            request=request,
        )


class ScriptedTransport(_Script, httpx.BaseTransport):
    """Records every request; applies `faults` to the first ones, forwards the rest to `inner`."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        faults: list[Fault] | None = None,
        before: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        super().__init__(faults, before)
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # a multipart upload streams its body: record it whole
        fault = self._next_fault(request)
        if isinstance(fault, Answer):
            return self._answer(fault, request)
        if isinstance(fault, Refuse):
            raise httpx.ConnectError("connection refused", request=request)
        response = self._inner.handle_request(request)
        if isinstance(fault, LoseAnswer):
            response.read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


class AsyncScriptedTransport(_Script, httpx.AsyncBaseTransport):
    """The async twin of `ScriptedTransport`."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        faults: list[Fault] | None = None,
        before: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        super().__init__(faults, before)
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()  # a multipart upload streams its body: record it whole
        fault = self._next_fault(request)
        if isinstance(fault, Answer):
            return self._answer(fault, request)
        if isinstance(fault, Refuse):
            raise httpx.ConnectError("connection refused", request=request)
        response = await self._inner.handle_async_request(request)
        if isinstance(fault, LoseAnswer):
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response
