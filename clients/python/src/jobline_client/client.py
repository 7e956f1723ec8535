"""`Client` (blocking, over `httpx.Client`) and `AsyncClient` (over `httpx.AsyncClient`): the same
methods, the same requests, the same retries; only the waiting differs.

Large data goes straight between the caller and the service's data bucket, through presigned URLs
the API hands out: a submit whose body would pass the API's 1 MiB uploads its payload first
(`POST /uploads`, then the form to the bucket) and names the upload; `get` downloads a payload or
a result the job links to (`payload_url`, `result_url`) and checks it against the job's size and
SHA-256. No credential of the API is sent to the bucket."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from jobline_client.errors import (
    RETRYABLE_STATUSES,
    Conflict,
    DataTransferFailed,
    InvalidRequest,
    InvalidResponse,
    JoblineClientError,
    ServiceUnavailable,
    error_for,
)
from jobline_client.models import (
    DataLink,
    Job,
    JobPage,
    JobStatus,
    JobSummary,
    JobTypeInfo,
)
from jobline_client.pacing import (
    ProgressCallback,
    RetryPolicy,
    Waiting,
    is_retryable,
    may_have_arrived,
)

__version__ = "0.1.0"

DEFAULT_API_URL = "http://127.0.0.1:8000"
MAX_PAGE_SIZE = 100
"""The API's largest `limit`: `list()` asks for pages this big unless told otherwise."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEV_USER_HEADER = "X-Dev-User"
UNRETRYABLE_JOB_STATES = frozenset(
    {JobStatus.FAILED, JobStatus.DEAD_LETTERED, JobStatus.CANCELLED}
)
MAX_INLINE_BODY_BYTES = 1024 * 1024
"""The largest `POST /jobs` body the API takes: a submit whose body would be larger uploads its
payload first (`POST /uploads`) and names the upload instead."""
CREDENTIAL_HEADERS = ("Authorization", DEV_USER_HEADER)
"""Headers never sent to the data bucket: its presigned URLs carry their own authorization."""


def _json_bytes(value: Any) -> bytes:
    """JSON as the client sends it: compact UTF-8 (what the API's body limit counts)."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


@dataclass(frozen=True)
class _Call:
    """One API request, and how to read its answer."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    job_id: str | None = None
    """Set when the path names one job: its 404 is `JobNotFound` (elsewhere: a wrong base URL)."""
    settled: Callable[[Job], bool] | None = None
    """For cancel and retry: when an earlier try may have reached the server (a timeout, a
    dropped answer, a 502/504) and a later one answers 409, the job is read back and, if this
    says the earlier try took effect, the call returns the job instead of raising `Conflict`."""


def _uploaded(call: _Call, upload_id: str) -> _Call:
    """A submit's call with its payload replaced by the upload that carries it."""
    body = {name: value for name, value in call.body.items() if name != "payload"}
    return replace(call, body={**body, "payload_upload": upload_id})


def _inline(call: _Call) -> bool:
    """Whether the call's body is small enough for the API to take as it is."""
    return len(_json_bytes(call.body)) <= MAX_INLINE_BODY_BYTES


def _content_type(call: _Call) -> dict[str, str]:
    """The header of a call's JSON body (none without one)."""
    return {} if call.body is None else {"Content-Type": "application/json"}


def _bare(request: httpx.Request) -> httpx.Request:
    """`request` without the API's credentials (for the data bucket's presigned URLs)."""
    for name in CREDENTIAL_HEADERS:
        if name in request.headers:
            del request.headers[name]
    return request


def _where(request: httpx.Request) -> str:
    """A request to the data bucket as an error message names it: never its signature."""
    return f"{request.method} {request.url.copy_with(query=None)}"


def _upload_form(answer: Any, size: int) -> tuple[str, str, dict[str, str]]:
    """(upload id, url, form fields) of `POST /uploads`'s answer, for a payload of `size` bytes."""
    if not isinstance(answer, Mapping) or not all(
        isinstance(answer.get(name), kind)
        for name, kind in (
            ("upload_id", str),
            ("url", str),
            ("fields", Mapping),
            ("max_bytes", int),
        )
    ):
        raise InvalidResponse("POST /uploads did not answer an upload form")
    if size > answer["max_bytes"]:
        raise InvalidRequest(
            413,
            f"the payload is {size} bytes; the service takes at most "
            f"{answer['max_bytes']}",
        )
    fields = {str(name): str(value) for name, value in answer["fields"].items()}
    return answer["upload_id"], answer["url"], fields


def _transferred(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    """The data bucket's answer if it is a success, else `DataTransferFailed` with S3's code."""
    if response.is_success:
        return response
    code = re.search(r"<Code>([^<]{1,64})</Code>", response.text[:2000])
    reason = code.group(1) if code else response.reason_phrase
    raise DataTransferFailed(
        f"{_where(request)} answered {response.status_code} ({reason})",
        response.status_code,
    )


def _decoded(name: str, link: DataLink, content: bytes) -> Any:
    """The downloaded `name` (payload, result), once its bytes are the ones the job names."""
    if len(content) != link.size or hashlib.sha256(content).hexdigest() != link.sha256:
        raise DataTransferFailed(
            f"the {name} downloaded is not the job's: {len(content)} bytes where "
            f"{link.size} were expected, or another SHA-256"
        )
    try:
        return json.loads(content)
    except ValueError as exc:
        raise DataTransferFailed(f"the {name} downloaded is not JSON: {exc}") from None


EXPIRED = 403
"""What the bucket answers a presigned URL past its expiry: the job is read again for a new one."""


def _job_path(job_id: str, action: str = "") -> str:
    return f"/jobs/{quote(job_id, safe='')}{action}"


def _submit_call(
    type: str,
    payload: Any,
    idempotency_key: str | None,
    delay_seconds: int,
    max_attempts: int,
) -> _Call:
    # Always a key, and the same one on every try of this call: a retry cannot submit twice.
    key = idempotency_key or str(uuid.uuid4())
    return _Call(
        "POST",
        "/jobs",
        body={
            "type": type,
            "payload": payload,
            "max_attempts": max_attempts,
            "delay_seconds": delay_seconds,
        },
        headers={IDEMPOTENCY_HEADER: key},
    )


def _list_call(
    status: JobStatus | str | None, type: str | None, limit: int, cursor: str | None
) -> _Call:
    params: dict[str, str | int] = {"limit": limit}
    if status is not None:
        params["status"] = str(status)
    if type is not None:
        params["type"] = type
    if cursor is not None:
        params["cursor"] = cursor
    return _Call("GET", "/jobs", params=params)


def _cancel_call(job_id: str) -> _Call:
    return _Call(
        "POST",
        _job_path(job_id, "/cancel"),
        job_id=job_id,
        settled=lambda job: (
            job.status is JobStatus.CANCELLED or job.cancel_requested_at is not None
        ),
    )


def _retry_call(job_id: str) -> _Call:
    return _Call(
        "POST",
        _job_path(job_id, "/retry"),
        job_id=job_id,
        settled=lambda job: job.status not in UNRETRYABLE_JOB_STATES,
    )


@dataclass
class _Listing:
    """Where a listing of at most `limit` jobs is: the cursor, and how many jobs are still due."""

    remaining: int | None
    page_size: int
    cursor: str | None = None
    done: bool = False

    @classmethod
    def of(cls, limit: int | None, page_size: int | None) -> _Listing:
        size = page_size or MAX_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}")
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")
        return cls(remaining=limit, page_size=size, done=limit == 0)

    def next_limit(self) -> int:
        """The `limit` of the next page request."""
        if self.remaining is None:
            return self.page_size
        return min(self.page_size, self.remaining)

    def take(self, page: JobPage) -> tuple[JobSummary, ...]:
        """The jobs of `page` to yield; moves to the next page (or to the end)."""
        items = page.items if self.remaining is None else page.items[: self.remaining]
        if self.remaining is not None:
            self.remaining -= len(items)
        self.cursor = page.next_cursor
        self.done = self.cursor is None or self.remaining == 0
        return items


class _Unsettled(Exception):
    """A 409 after an ambiguous earlier try: read the job back before believing it."""

    def __init__(self, conflict: Conflict) -> None:
        super().__init__(str(conflict))
        self.conflict = conflict


class _Tries:
    """The retry state of one call: decides after each failure whether and when to try again."""

    def __init__(self, policy: RetryPolicy, base_url: str, call: _Call) -> None:
        self._policy = policy
        self._base_url = base_url
        self._call = call
        self._done = 0
        self.ambiguous = False
        """An earlier try may have reached the server although no answer says so."""

    def _next_delay(self, response: httpx.Response | None = None) -> float | None:
        if self._done >= self._policy.retries:
            return None
        delay = self._policy.delay(self._done, response)
        self._done += 1
        return delay

    def after_error(self, exc: Exception) -> float:
        """Seconds to wait before the next try, or raise the error this failure becomes."""
        path = self._call.path
        where = (
            f"{self._call.method} {path if '://' in path else self._base_url + path}"
        )
        if not isinstance(exc, httpx.HTTPError):
            raise JoblineClientError(f"{where}: {exc}") from exc
        if not is_retryable(exc):
            raise JoblineClientError(f"{where}: {type(exc).__name__}: {exc}") from exc
        self.ambiguous = self.ambiguous or may_have_arrived(exc)
        delay = self._next_delay()
        if delay is None:
            tries = self._done + 1
            host = self._base_url if "://" not in self._call.path else self._call.path
            raise ServiceUnavailable(
                f"cannot reach {host} ({type(exc).__name__}: {str(exc) or 'no detail'}) "
                f"after {tries} {'try' if tries == 1 else 'tries'}"
            ) from exc
        return delay

    def after_response(self, response: httpx.Response) -> float | None:
        """Seconds to wait before the next try, or None when this answer is the outcome."""
        if response.status_code not in RETRYABLE_STATUSES:
            return None
        delay = self._next_delay(response)
        if delay is not None and response.status_code in (502, 504):
            self.ambiguous = True  # the gateway gave up; the function may have run
        return delay

    def outcome(self, response: httpx.Response) -> Any:
        """The answer's JSON body, or raise its error."""
        try:
            body = response.json()
        except ValueError:
            if response.is_success:
                raise InvalidResponse(
                    f"{self._call.method} {self._call.path} answered "
                    f"{response.status_code} with a body that is not JSON"
                ) from None
            body = response.text[:500] or response.reason_phrase
        if response.is_success:
            return body
        error = error_for(
            response.status_code, body, job_route=self._call.job_id is not None
        )
        if (
            isinstance(error, Conflict)
            and self.ambiguous
            and self._call.settled is not None
        ):
            raise _Unsettled(error)
        raise error


def _base_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid API URL {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(
            f"the API URL must be http(s)://host[:port][/stage], not {url!r}"
        )
    return url.rstrip("/")


class _Settings:
    """What both clients share: the base URL, headers, retry policy and polling."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        dev_user: str | None,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float,
        poll_interval: float,
        max_poll_interval: float,
    ) -> None:
        self.base_url = _base_url(base_url)
        self.headers = {
            "Accept": "application/json",
            "User-Agent": f"jobline-client/{__version__}",
        }
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if dev_user:
            self.headers[DEV_USER_HEADER] = dev_user
        self.timeout = httpx.Timeout(timeout)
        self.retry = RetryPolicy(retries, backoff, max_backoff)
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval

    def tries(self, call: _Call) -> _Tries:
        return _Tries(self.retry, self.base_url, call)

    def waiting(
        self,
        timeout: float | None,
        on_progress: ProgressCallback | None,
        poll_interval: float | None,
        max_poll_interval: float | None,
    ) -> Waiting:
        return Waiting(
            timeout,
            on_progress,
            poll_interval or self.poll_interval,
            max_poll_interval or max(self.max_poll_interval, poll_interval or 0),
        )


class Client:
    """A blocking Jobline client. Every call retries 429, 502, 503, 504, timeouts and network
    errors with exponential backoff and jitter; use it as a context manager or `close()` it.

    `token` is sent as `Authorization: Bearer`, `dev_user` as `X-Dev-User` (local stacks only).
    `transport` replaces httpx's network transport (tests run the API in-process with it).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        token: str | None = None,
        dev_user: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        poll_interval: float = 0.2,
        max_poll_interval: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = _Settings(
            base_url,
            token,
            dev_user,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )
        self.base_url = self._settings.base_url
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=self._settings.headers,
            timeout=self._settings.timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _send(self, call: _Call) -> Any:
        tries = self._settings.tries(call)
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    content=None if call.body is None else _json_bytes(call.body),
                    headers={**call.headers, **_content_type(call)},
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                time.sleep(tries.after_error(exc))
                continue
            delay = tries.after_response(response)
            if delay is None:
                return tries.outcome(response)
            time.sleep(delay)

    def _transfer(self, request: httpx.Request) -> httpx.Response:
        """Send a request to the data bucket, with the API's retries, without its credentials."""
        tries = self._settings.tries(_Call(request.method, _where(request)))
        while True:
            try:
                response = self._http.send(_bare(request))
            except httpx.HTTPError as exc:
                time.sleep(tries.after_error(exc))
                continue
            delay = tries.after_response(response)
            if delay is None:
                return _transferred(request, response)
            time.sleep(delay)

    def _upload(self, payload: Any) -> str:
        """Upload `payload` to the data bucket (`POST /uploads`, then its form); its upload id."""
        data = _json_bytes(payload)
        upload_id, url, fields = _upload_form(
            self._send(_Call("POST", "/uploads")), len(data)
        )
        files = {"file": ("payload.json", data, "application/json")}
        self._transfer(self._http.build_request("POST", url, data=fields, files=files))
        return upload_id

    def _with_data(self, job: Job) -> Job:
        """`job` with the payload and result it links to downloaded (a link past its expiry is
        renewed by reading the job again, once)."""
        found: dict[str, Any] = {}
        for name, link in job.links.items():
            request = self._http.build_request("GET", link.url)
            try:
                response = self._transfer(request)
            except DataTransferFailed as failed:
                if failed.status != EXPIRED:
                    raise
                job = self._job(_Call("GET", _job_path(job.id), job_id=job.id))
                link = job.links.get(name, link)
                response = self._transfer(self._http.build_request("GET", link.url))
            found[name] = _decoded(name, link, response.content)
        return replace(job, **found) if found else job

    def _job(self, call: _Call) -> Job:
        try:
            return Job.from_dict(self._send(call))
        except _Unsettled as unsettled:
            assert call.job_id is not None and call.settled is not None
            job = self.get(call.job_id)
            if call.settled(job):
                return job
            raise unsettled.conflict from None

    def submit(
        self,
        type: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        delay_seconds: int = 0,
        max_attempts: int = 3,
    ) -> Job:
        """Submit a job (202), or get back the job an earlier submit with the same
        `idempotency_key` and body created (200). Without a key, one is generated for this call.
        A payload whose request would pass the API's 1 MiB is uploaded first, and the job
        returned holds it as sent."""
        call = _submit_call(type, payload, idempotency_key, delay_seconds, max_attempts)
        if not _inline(call):
            call = _uploaded(call, self._upload(payload))
        job = self._job(call)
        return replace(job, payload=payload) if job.payload_link else job

    def get(self, id: str) -> Job:
        """The job; `JobNotFound` for an unknown, expired or someone else's id. A payload or a
        result kept in the data bucket is downloaded and checked (`DataTransferFailed`)."""
        return self._with_data(self._job(_Call("GET", _job_path(id), job_id=id)))

    def list_page(
        self,
        status: JobStatus | str | None = None,
        type: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of the caller's jobs, newest first, as summaries; it may hold fewer than
        `limit` (even none) with a `next_cursor` to go on."""
        return JobPage.from_dict(self._send(_list_call(status, type, limit, cursor)))

    def list(
        self,
        status: JobStatus | str | None = None,
        type: str | None = None,
        limit: int | None = None,
        *,
        page_size: int | None = None,
    ) -> Iterator[JobSummary]:
        """The caller's jobs, newest first, as summaries (no payload, result or history: `get`
        reads one whole), at most `limit` of them (None: all), fetched page by page
        (`page_size`, default 100; a page may come back shorter) as the iteration goes."""
        listing = _Listing.of(limit, page_size)
        while not listing.done:
            page = self.list_page(status, type, listing.next_limit(), listing.cursor)
            yield from listing.take(page)

    def cancel(self, id: str) -> Job:
        """Cancel a job: a queued one is `cancelled` at once, a running one gets
        `cancel_requested_at` and stops at its next checkpoint. `Conflict` once it finished."""
        return self._job(_cancel_call(id))

    def retry(self, id: str) -> Job:
        """Queue a failed, dead-lettered or cancelled job again; `Conflict` in any other state."""
        return self._job(_retry_call(id))

    def job_types(self) -> builtins.list[JobTypeInfo]:
        """The job types the service runs, each with the JSON Schema of its payload."""
        body = self._send(_Call("GET", "/job-types"))
        if not isinstance(body, builtins.list):
            raise InvalidResponse("GET /job-types did not answer a list")
        return [JobTypeInfo.from_dict(item) for item in body]

    def wait(
        self,
        id: str,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
    ) -> Job:
        """Poll the job until it is final (succeeded, failed, cancelled, dead_lettered, rejected)
        and return it, its data downloaded as `get` does. `on_progress(job)` is called with the
        first state seen and on every change of status, attempts or progress (the jobs it sees
        link to their data without downloading it). `WaitTimeout` (carrying the last job) after
        `timeout` s."""
        waiting = self._settings.waiting(
            timeout, on_progress, poll_interval, max_poll_interval
        )
        while True:
            job = self._job(_Call("GET", _job_path(id), job_id=id))
            waiting.observe(job)
            if job.is_final:
                return self._with_data(job)
            time.sleep(waiting.next_delay(job))


class AsyncClient:
    """The asyncio twin of `Client`: the same methods, awaited (`list` is an async iterator).
    Use it as an async context manager or `await aclose()`."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        token: str | None = None,
        dev_user: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        poll_interval: float = 0.2,
        max_poll_interval: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = _Settings(
            base_url,
            token,
            dev_user,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )
        self.base_url = self._settings.base_url
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._settings.headers,
            timeout=self._settings.timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _send(self, call: _Call) -> Any:
        tries = self._settings.tries(call)
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    content=None if call.body is None else _json_bytes(call.body),
                    headers={**call.headers, **_content_type(call)},
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                await asyncio.sleep(tries.after_error(exc))
                continue
            delay = tries.after_response(response)
            if delay is None:
                return tries.outcome(response)
            await asyncio.sleep(delay)

    async def _transfer(self, request: httpx.Request) -> httpx.Response:
        """See `Client._transfer`."""
        tries = self._settings.tries(_Call(request.method, _where(request)))
        while True:
            try:
                response = await self._http.send(_bare(request))
            except httpx.HTTPError as exc:
                await asyncio.sleep(tries.after_error(exc))
                continue
            delay = tries.after_response(response)
            if delay is None:
                return _transferred(request, response)
            await asyncio.sleep(delay)

    async def _upload(self, payload: Any) -> str:
        """See `Client._upload`."""
        data = _json_bytes(payload)
        upload_id, url, fields = _upload_form(
            await self._send(_Call("POST", "/uploads")), len(data)
        )
        files = {"file": ("payload.json", data, "application/json")}
        await self._transfer(
            self._http.build_request("POST", url, data=fields, files=files)
        )
        return upload_id

    async def _with_data(self, job: Job) -> Job:
        """See `Client._with_data`."""
        found: dict[str, Any] = {}
        for name, link in job.links.items():
            request = self._http.build_request("GET", link.url)
            try:
                response = await self._transfer(request)
            except DataTransferFailed as failed:
                if failed.status != EXPIRED:
                    raise
                job = await self._job(_Call("GET", _job_path(job.id), job_id=job.id))
                link = job.links.get(name, link)
                response = await self._transfer(
                    self._http.build_request("GET", link.url)
                )
            found[name] = _decoded(name, link, response.content)
        return replace(job, **found) if found else job

    async def _job(self, call: _Call) -> Job:
        try:
            return Job.from_dict(await self._send(call))
        except _Unsettled as unsettled:
            assert call.job_id is not None and call.settled is not None
            job = await self.get(call.job_id)
            if call.settled(job):
                return job
            raise unsettled.conflict from None

    async def submit(
        self,
        type: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        delay_seconds: int = 0,
        max_attempts: int = 3,
    ) -> Job:
        """See `Client.submit`."""
        call = _submit_call(type, payload, idempotency_key, delay_seconds, max_attempts)
        if not _inline(call):
            call = _uploaded(call, await self._upload(payload))
        job = await self._job(call)
        return replace(job, payload=payload) if job.payload_link else job

    async def get(self, id: str) -> Job:
        """See `Client.get`."""
        return await self._with_data(
            await self._job(_Call("GET", _job_path(id), job_id=id))
        )

    async def list_page(
        self,
        status: JobStatus | str | None = None,
        type: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """See `Client.list_page`."""
        return JobPage.from_dict(
            await self._send(_list_call(status, type, limit, cursor))
        )

    async def list(
        self,
        status: JobStatus | str | None = None,
        type: str | None = None,
        limit: int | None = None,
        *,
        page_size: int | None = None,
    ) -> AsyncIterator[JobSummary]:
        """See `Client.list` (`async for job in client.list(...)`)."""
        listing = _Listing.of(limit, page_size)
        while not listing.done:
            page = await self.list_page(
                status, type, listing.next_limit(), listing.cursor
            )
            for job in listing.take(page):
                yield job

    async def cancel(self, id: str) -> Job:
        """See `Client.cancel`."""
        return await self._job(_cancel_call(id))

    async def retry(self, id: str) -> Job:
        """See `Client.retry`."""
        return await self._job(_retry_call(id))

    async def job_types(self) -> builtins.list[JobTypeInfo]:
        """See `Client.job_types`."""
        body = await self._send(_Call("GET", "/job-types"))
        if not isinstance(body, builtins.list):
            raise InvalidResponse("GET /job-types did not answer a list")
        return [JobTypeInfo.from_dict(item) for item in body]

    async def wait(
        self,
        id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the same signature as Client.wait
        on_progress: ProgressCallback | None = None,
        *,
        poll_interval: float | None = None,
        max_poll_interval: float | None = None,
    ) -> Job:
        """See `Client.wait`."""
        waiting = self._settings.waiting(
            timeout, on_progress, poll_interval, max_poll_interval
        )
        while True:
            job = await self._job(_Call("GET", _job_path(id), job_id=id))
            waiting.observe(job)
            if job.is_final:
                return await self._with_data(job)
            await asyncio.sleep(waiting.next_delay(job))
