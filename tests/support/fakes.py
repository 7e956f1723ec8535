"""In-memory fakes of Jobline's ports, with the semantics of the DynamoDB and SQS adapters.

`InMemoryJobRepository` mirrors `jobline.aws.repository.DynamoJobRepository`: conditional writes that
raise `ConditionFailed(current)` (the condition is `Precondition.admits`, the write `apply`: the same
pure code the lifecycle is tested with), write tokens (a write that meets its own earlier
application succeeds), listings of summaries, expired jobs hidden, newest first by
`(created_at, id)`, with DynamoDB's resume keys (one whenever a page is full, by count or by its
byte budget) checked as the adapter checks them. `FakeStream` stands for the table's stream
and the outbox dispatcher: every write is handed to `service.dispatch` as it happens.
`InMemoryBlobStore` mirrors `jobline.aws.blobs.S3BlobStore` (the data bucket), and answers its own
presigned URLs and upload forms as S3 would (`handle`).
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
from jobline.aws.items import sort_key, status_index_key
from jobline.aws.listing import check_start, plan
from jobline.backoff import Backoff
from jobline.errors import (
    ConditionFailed,
    DataNotFound,
    DataTooLarge,
    FunctionInvokeFailed,
    QueueUnavailable,
    StorageUnavailable,
)
from jobline.limits import LIST_PAGE_MAX_BYTES
from jobline.models import (
    Attempt,
    Job,
    JobFilter,
    JobMessage,
    JobSummary,
    Progress,
    matches,
)
from jobline.ports import StartKey
from jobline.registry import JobContext, JobHandlerError, JobType
from jobline.targets import (
    FunctionAnswer,
    LocalLambdaContext,
    call_like_lambda,
    epoch_deadline,
)
from jobline.transition import JobUpdate, Precondition, apply
from pydantic import RootModel

from tests.support.handlers import of_current_kind
from tests.support.jobfields import STORED_TIMESTAMPS

CURSOR_SECRET = b"unit-test-cursor-secret"
START = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)


def _json_copy(value: Any) -> Any:
    """What DynamoDB gives back for a JSON field: the value after a round trip through JSON text."""
    return json.loads(
        json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    )


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _stored_attempt(attempt: Attempt) -> Attempt:
    return attempt.model_copy(
        update={
            "started_at": _utc(attempt.started_at),
            "finished_at": _utc(attempt.finished_at),
        }
    )


def _stored(job: Job) -> Job:
    """A job as the table would hold it: JSON fields copied, timestamps in UTC, progress percent
    kept to 3 decimals (`jobline.aws.repository.to_attribute`)."""
    data = job.model_dump()
    data["payload"] = _json_copy(job.payload)
    data["result"] = _json_copy(job.result)
    for name in STORED_TIMESTAMPS:
        data[name] = _utc(data[name])
    data["history"] = tuple(_stored_attempt(entry) for entry in job.history)
    if job.progress is not None:
        data["progress"] = Progress(
            percent=float(f"{job.progress.percent:.3f}"),
            message=job.progress.message,
            updated_at=job.progress.updated_at.astimezone(UTC),
            seq=job.progress.seq,
        )
    return Job.model_validate(data)


_sort_key = sort_key


def _index_keys(job: Job) -> dict[str, str]:
    """The index partition keys `jobline.aws.items.job_to_item` stores for `job` (the status index
    is sparse: `owner_status` only in `items.INDEXED_STATUSES`)."""
    keys = {"owner": job.owner}
    status_partition = status_index_key(job.owner, job.status)
    if status_partition is not None:
        keys["owner_status"] = status_partition
    return keys


@dataclass(frozen=True)
class Write:
    """One applied update, as the fake recorded it."""

    update: JobUpdate
    values: dict[str, Any]
    """The fields it set (None: removed), `JobUpdate.assignments()`."""


class FakeStream:
    """The table's stream and the outbox's dispatcher, in process: every write's new image goes to
    `deliver` (the dispatcher) at once; images it did not take stay in `undelivered` until
    `redeliver()`, as Lambda retries a stream batch. `paused` keeps them all back."""

    def __init__(self) -> None:
        self.records: list[Job] = []
        """Every write's new image, in order."""
        self.undelivered: list[Job] = []
        self.paused = False
        self.deliver: Callable[[list[Job]], list[bool]] | None = None
        self._lock = threading.Lock()

    def written(self, job: Job) -> None:
        with self._lock:
            self.records.append(job)
            self.undelivered.append(job)
        if not self.paused:
            self.redeliver()

    def redeliver(self) -> int:
        """Hand every undelivered image to the dispatcher; how many it took."""
        with self._lock:
            pending, self.undelivered = self.undelivered, []
        if not pending or self.deliver is None:
            with self._lock:
                self.undelivered[:0] = pending
            return 0
        done = self.deliver(pending)
        left = [job for job, ok in zip(pending, done, strict=True) if not ok]
        with self._lock:
            self.undelivered[:0] = left
        return len(pending) - len(left)


class InMemoryJobRepository:
    """A `JobRepository` in a dict, safe to share between the worker's threads."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._tokens: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.stream = FakeStream()
        self.broken: dict[str, Exception] = {}
        """Job ids whose updates raise the given exception (an outage, or a bug)."""
        self.lose_responses: dict[str, int] = {}
        """Job ids whose next N updates are applied, then raise `StorageUnavailable` (a response
        lost after botocore's retries: the caller does not know it was applied)."""
        self.writes: list[tuple[str, Write]] = []
        """Every applied update, in order: (job id, change)."""
        self.reads = 0
        """How many `get` calls were made."""

    # ------------------------------------------------------------- test views
    @property
    def jobs(self) -> list[Job]:
        """Every stored job (expired ones included), oldest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=_sort_key)

    def put(self, job: Job) -> None:
        """Store a job as it is, unconditionally (arrange a state for a test)."""
        with self._lock:
            self._jobs[job.id] = _stored(job)

    # ------------------------------------------------------------------ port
    def create(self, job: Job, now: datetime, *, token: str | None = None) -> None:
        """Store a new job unless a live job with its id exists (or it shows this `token`)."""
        with self._lock:
            current = self._jobs.get(job.id)
            if current is not None and not current.is_expired(int(now.timestamp())):
                if token and self._applied(job.id, current, token):
                    return
                raise ConditionFailed(current)
            stored = self._jobs[job.id] = _stored(job)
            self._tokens[job.id] = token
        self.stream.written(stored)

    def _applied(self, job_id: str, current: Job, token: str) -> bool:
        """Whether `current` shows the write with `token` (`aws.repository.applied_by`)."""
        return (
            self._tokens.get(job_id) == token
            or token in current.control_tokens
            or any(entry.token == token for entry in current.history)
        )

    def get(self, job_id: str) -> Job | None:
        """The stored job (expired or not)."""
        with self._lock:
            self.reads += 1
            return self._jobs.get(job_id)

    def update(
        self,
        job_id: str,
        update: JobUpdate,
        precondition: Precondition,
        *,
        token: str | None = None,
    ) -> Job:
        """Apply `update` if `precondition` holds; return the job after the write (also when
        the item shows this `token`'s write as already applied)."""
        with self._lock:
            if job_id in self.broken:
                raise self.broken[job_id]
            current = self._jobs.get(job_id)
            if not precondition.admits(current):
                if (
                    current is not None
                    and token
                    and self._applied(job_id, current, token)
                ):
                    return current
                raise ConditionFailed(current)
            assert current is not None
            updated = _stored(apply(current, update))
            self._jobs[job_id] = updated
            self._tokens[job_id] = token
            self.writes.append((job_id, Write(update, update.assignments())))
            lose = self.lose_responses.get(job_id, 0)
            if lose:
                self.lose_responses[job_id] = lose - 1
        self.stream.written(updated)
        if lose:
            raise StorageUnavailable("update: the response was lost")
        return updated

    def query(
        self,
        owner: str,
        job_filter: JobFilter,
        limit: int,
        start: StartKey | None,
        now: datetime,
        *,
        max_bytes: int = LIST_PAGE_MAX_BYTES,
    ) -> tuple[list[JobSummary], StartKey | None]:
        """Up to `limit` live jobs of `owner`, newest first, as summaries within `max_bytes` (at
        least one), and where to resume: just after the last one returned, whenever a page is
        full by count or by size. Like DynamoDB, it selects by the index partition key
        (`jobline.aws.listing.plan`), not by the owner field: an ambiguous key would leak here as
        it would in the table. A type is filtered on the index; a status the sparse status index
        does not hold, and expiry, on the items. A resume key is checked as the adapter checks
        it (`jobline.aws.listing.check_start`)."""
        chosen = plan(owner, job_filter)
        now_epoch = int(now.timestamp())
        with self._lock:
            candidates = sorted(
                (
                    job
                    for job in self._jobs.values()
                    if _index_keys(job).get(chosen.key_name) == chosen.key_value
                    and (job_filter.type is None or job.type == job_filter.type)
                ),
                key=_sort_key,
                reverse=True,
            )
        if start is not None:
            check_start(start, chosen)
            candidates = [job for job in candidates if _sort_key(job) < start["sk"]]
        visible = [
            job
            for job in candidates
            if not job.is_expired(now_epoch)
            and (not chosen.status_on_items or job.status is job_filter.status)
            and matches(job, owner, job_filter, now)  # the port's one visibility filter
        ]
        page: list[JobSummary] = []
        used = 0
        for job in visible:
            summary = JobSummary.of(job)
            size = summary.encoded_size()
            if len(page) == limit or (page and used + size > max_bytes):
                break
            page.append(summary)
            used += size
        if len(page) < limit and len(page) == len(visible):
            return page, None
        last = visible[len(page) - 1]
        return page, {
            "id": last.id,
            "sk": _sort_key(last),
            chosen.key_name: chosen.key_value,
        }


@dataclass(frozen=True)
class SentMessage:
    """One message the fake queue accepted."""

    message: JobMessage
    delay_seconds: int
    message_id: str
    lane: str = "default"


class InMemoryJobQueue:
    """A `JobQueue` that records what was sent and every visibility change; `fail_with` makes the
    next calls fail."""

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self.visibility: list[tuple[str, int]] = []
        """Every `postpone` call: (receipt handle, seconds)."""
        self.fail_with: str | None = None
        self._lock = threading.Lock()

    def _send(
        self, message: JobMessage, delay_seconds: int, lane: str = "default"
    ) -> str:
        """Record the message, or raise `QueueUnavailable` when told to fail."""
        with self._lock:
            if self.fail_with is not None:
                raise QueueUnavailable(self.fail_with)
            message_id = f"msg-{len(self.sent) + 1}"
            self.sent.append(SentMessage(message, delay_seconds, message_id, lane))
            return message_id

    def send_batch(
        self, messages: Sequence[tuple[JobMessage, int]], lane: str = "default"
    ) -> list[bool]:
        """Record every message, or raise `QueueUnavailable` when told to fail."""
        return [
            self._send(message, delay, lane) is not None for message, delay in messages
        ]

    def postpone(
        self, receipt_handle: str, seconds: int, queue: str | None = None
    ) -> None:
        """Record the postponement, or raise `QueueUnavailable` when told to fail."""
        with self._lock:
            if self.fail_with is not None:
                raise QueueUnavailable(self.fail_with)
            self.visibility.append((receipt_handle, seconds))


FAKE_DATA_HOST = "data.jobline.test"
"""The host of the fake data bucket's presigned URLs (`InMemoryBlobStore.handle` answers them)."""


class InMemoryBlobStore:
    """A `BlobStore` in a dict, with the S3 adapter's semantics: a put whose bytes do not match
    its SHA-256 is refused (S3's `BadDigest`), `get` refuses an object over its limit before
    reading it, `touch` needs the object; `fail_with` makes the next calls unavailable. Its
    presigned URLs (`http://data.jobline.test/...`) are answered by `handle`, as S3 answers
    them: a GET of a download URL before it expires, a form POST of an upload within its size."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []
        """Every key written (`put`, an upload), in order."""
        self.touched: list[str] = []
        self.fail_with: str | None = None
        self.answer_next: list[int] = []
        """Statuses `handle` answers the next requests with, as S3 refuses them (403: a URL
        past its expiry), one per request."""
        self.handled: list[httpx.Request] = []
        """Every request `handle` answered."""
        self.before_put: Callable[[str], None] | None = None
        """Called with the key of every `put`, before it is stored (to look at the world then)."""
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.fail_with is not None:
            raise StorageUnavailable(self.fail_with)

    def put(self, key: str, data: bytes, sha256: str) -> None:
        """Store `data` under `key` (refused when it is not what `sha256` says)."""
        self._check()
        if self.before_put is not None:
            self.before_put(key)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError("BadDigest: the bytes are not the ones hashed")
        with self._lock:
            self.objects[key] = bytes(data)
            self.puts.append(key)

    def get(self, key: str, max_bytes: int) -> bytes:
        """The object's bytes (`DataNotFound`, `DataTooLarge`)."""
        self._check()
        with self._lock:
            data = self.objects.get(key)
        if data is None:
            raise DataNotFound(key)
        if len(data) > max_bytes:
            raise DataTooLarge(len(data), max_bytes)
        return data

    def touch(self, key: str) -> None:
        """Record the rewrite (`DataNotFound` when the object is gone)."""
        self._check()
        if key not in self.objects:
            raise DataNotFound(key)
        self.touched.append(key)

    def download_url(self, key: str, expires_in_s: int) -> str:
        """A fake presigned GET (`handle` answers it)."""
        return f"http://{FAKE_DATA_HOST}/{key}?X-Amz-Expires={expires_in_s}&X-Amz-Signature=f"

    def upload_form(
        self, key: str, max_bytes: int, expires_in_s: int
    ) -> tuple[str, dict[str, str]]:
        """A fake POST policy (`handle` enforces its key and size)."""
        fields = {"key": key, "policy": f"{max_bytes}", "x-amz-signature": "f"}
        return f"http://{FAKE_DATA_HOST}/", fields

    def handle(self, request: httpx.Request) -> httpx.Response:
        """S3's answer to a request for one of this store's presigned URLs or forms."""
        self.handled.append(request)
        if self.answer_next:
            status = self.answer_next.pop(0)
            return httpx.Response(
                status, text="<Error><Code>AccessDenied</Code></Error>"
            )
        if "authorization" in request.headers:
            return httpx.Response(400, text="InvalidArgument: only one auth mechanism")
        key = request.url.path.lstrip("/")
        if request.method == "GET":
            query = parse_qs(request.url.query.decode())
            if "X-Amz-Signature" not in query:
                return httpx.Response(403, text="AccessDenied")
            data = self.objects.get(key)
            if data is None:
                return httpx.Response(404, text="NoSuchKey")
            return httpx.Response(
                200, content=data, headers={"content-type": "application/json"}
            )
        if request.method == "POST" and not key:
            fields, file = _form(request)
            if file is None or not 1 <= len(file) <= int(fields.get("policy", "0")):
                return httpx.Response(400, text="EntityTooLarge or EntityTooSmall")
            with self._lock:
                self.objects[fields["key"]] = file
                self.puts.append(fields["key"])
            return httpx.Response(204)
        return httpx.Response(405, text="MethodNotAllowed")


def _form(request: httpx.Request) -> tuple[dict[str, str], bytes | None]:
    """A `multipart/form-data` body's text fields, and its `file` part."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        head + request.read()
    )
    fields: dict[str, str] = {}
    file: bytes | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True)
        assert isinstance(content, bytes)
        if name == "file":
            file = content
        else:
            fields[str(name)] = content.decode()
    return fields, file


@dataclass
class FakeClock:
    """A clock that only moves when told to (or by `step` on every reading)."""

    now: datetime = START
    step: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        current = self.now
        self.now = current + self.step
        return current

    def peek(self) -> datetime:
        """The time of the latest reading, without taking a step (the instant it was read)."""
        return self.now - self.step

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward."""
        self.now += delta


class AnyInput(RootModel[dict[str, Any]]):
    """Any JSON object (input model of the test job types)."""


@dataclass
class CountingHandler:
    """A handler that counts its calls and returns or raises what it is told."""

    result: Any = field(default_factory=lambda: {"ok": True})
    error: Exception | None = None
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, payload: AnyInput, context: JobContext) -> Any:
        with self._lock:
            self.calls += 1
        if self.error is not None:
            raise self.error
        return self.result


def job_type_of(
    name: str,
    handler: Callable[[AnyInput, JobContext], Any],
    *,
    backoff: Backoff | None = None,
) -> JobType[AnyInput]:
    """A job type named `name` that runs `handler` on any JSON object, declared as the current
    handler kind (`tests.support.handlers`: plain unless a test runs under `handler_kind`)."""
    return JobType(
        name=name,
        description=f"test job type {name}",
        input_model=AnyInput,
        handler=of_current_kind(handler),
        backoff=backoff,
    )


def counting_job_type(name: str, handler: CountingHandler) -> JobType[AnyInput]:
    """A job type named `name` that runs `handler` on any JSON object."""
    return job_type_of(name, handler)


def failing_handler(
    message: str = "boom", *, retryable: bool = True
) -> CountingHandler:
    """A counting handler that always raises `JobHandlerError`."""
    return CountingHandler(error=JobHandlerError(message, retryable=retryable))


@dataclass
class InMemoryFunctionInvoker:
    """`FunctionInvoker` over Python callables by ARN, each run as Lambda's Python runtime would
    run it (`call_like_lambda`); what Lambda answers instead of running one (the adapter's
    `FunctionInvokeFailed` after its own tries) is scripted per ARN with `refuse_next`. An ARN
    with no callable is refused as Lambda refuses it (404, permanent)."""

    functions: dict[str, Callable[[Any, Any], Any]] = field(default_factory=dict)
    refusals: dict[str, list[FunctionInvokeFailed]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    """(ARN, decoded event) of every invocation, refused ones too."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, arn: str, function: Callable[[Any, Any], Any]) -> str:
        self.functions[arn] = function
        return arn

    def refuse_next(self, arn: str, error: FunctionInvokeFailed) -> None:
        self.refusals.setdefault(arn, []).append(error)

    def invoke(self, arn: str, event: bytes, *, deadline: float) -> FunctionAnswer:
        with self._lock:
            self.calls.append((arn, json.loads(event)))
            refusals = self.refusals.get(arn)
            refusal = refusals.pop(0) if refusals else None
        if refusal is not None:
            raise refusal
        function = self.functions.get(arn)
        if function is None:
            raise FunctionInvokeFailed(
                "ResourceNotFoundException",
                f"Function not found: {arn}",
                retryable=False,
            )
        name = arn.rsplit(":function:", 1)[-1]
        context = LocalLambdaContext(
            function_name=name, deadline=epoch_deadline(deadline)
        )
        return call_like_lambda(function, event, context)
