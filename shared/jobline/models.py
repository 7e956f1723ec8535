"""Jobs, their states and the messages that move them. Pure data: no I/O here."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from jobline.limits import (
    DEFAULT_MAX_ATTEMPTS,
    MAX_ATTEMPT_ERROR_TEXT_BYTES,
    MAX_ATTEMPTS,
    MAX_DELAY_S,
    MAX_ERROR_TEXT_BYTES,
    MIN_ATTEMPTS,
    SUMMARY_TEXT_CHARS,
)
from jobline.validation import canonical_json, cut_text, identity_problem, json_problem

UPLOAD_ID_PATTERN = r"^[0-9a-f]{32}$"
"""An upload's id (`POST /uploads`): 32 lowercase hex digits."""


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: `5` or `5.0`, never `"5"` or `true` (the strict check refuses
    those); a whole float becomes its int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInteger = Annotated[int, BeforeValidator(_whole_number), Strict()]
"""An integer field of a request: a JSON number that is a whole number; no text, no booleans."""


def _storable_payload(payload: Any) -> Any:
    problem = json_problem(payload)
    if problem is not None:
        raise ValueError(f"the payload {problem}")
    return payload


class JobStatus(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD_LETTERED = "dead_lettered"
    """SQS gave up on the job's message (maxReceiveCount) and the dead-letter consumer recorded it."""
    REJECTED = "rejected"
    """A submission from the ingest queue that failed validation; kept so it is not lost."""


RETRYABLE_STATUSES = frozenset(
    {JobStatus.FAILED, JobStatus.DEAD_LETTERED, JobStatus.CANCELLED}
)
"""States from which `POST /jobs/{id}/retry` re-queues a job."""


class RunOutcome(enum.StrEnum):
    """What the worker does with a job message once it is handled: the message's fate, not the
    job's (a job retry is a new message, sent by the outbox)."""

    DONE = "done"
    """Delete the message: the attempt is recorded (ended, or queued again after its backoff with
    the message postponed to then), or the message was a duplicate."""
    REDELIVER = "redeliver"
    """Give the message back to SQS: the attempt failed and the job is queued again (its delivery
    already postponed by the backoff), or another worker's live lease holds the job."""


class JobError(BaseModel):
    """Why an attempt or a job failed. The text is bounded (`limits.MAX_ERROR_TEXT_BYTES` of
    message, a tenth of it of type; `cut_text` marks a cut), so a job item stays under
    DynamoDB's 400 KB whatever a handler's exception says."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str

    @field_validator("type")
    @classmethod
    def _bounded_type(cls, text: str) -> str:
        return cut_text(text, MAX_ERROR_TEXT_BYTES // 10)

    @field_validator("message")
    @classmethod
    def _bounded_message(cls, text: str) -> str:
        return cut_text(text, MAX_ERROR_TEXT_BYTES)

    def cut_to(self, max_bytes: int) -> JobError:
        """This error with at most `max_bytes` of message and a tenth of it of type."""
        return JobError(
            type=cut_text(self.type, max_bytes // 10),
            message=cut_text(self.message, max_bytes),
        )


class DataRef(BaseModel):
    """Where a payload or a result too large for the job's item is kept: its key in the data
    bucket, its size (bytes of canonical JSON) and the SHA-256 of those bytes (hex)."""

    model_config = ConfigDict(frozen=True)

    key: str
    size: int
    sha256: str


class Attempt(BaseModel):
    """One attempt in a job's history. `finished_at` is None while it runs (or if its worker died).
    Attempts are numbered within a run: a retry starts run 2 at attempt 1."""

    model_config = ConfigDict(frozen=True)

    attempt: int
    run: int = 1
    started_at: datetime
    finished_at: datetime | None = None
    error: JobError | None = None
    request_id: str | None = None
    duration_ms: int | None = None
    token: str | None = None
    """Internal: the token of the write that recorded this entry (an attempt's outcome: its
    claim's lease id), so a write whose answer was lost recognises itself in the history."""

    @field_validator("error")
    @classmethod
    def _bounded_error(cls, error: JobError | None) -> JobError | None:
        """An entry keeps `limits.MAX_ATTEMPT_ERROR_TEXT_BYTES` of its error (`MAX_HISTORY`
        entries share the item; the job's own error keeps more)."""
        return None if error is None else error.cut_to(MAX_ATTEMPT_ERROR_TEXT_BYTES)


class Progress(BaseModel):
    """What a running handler last reported."""

    model_config = ConfigDict(frozen=True)

    percent: float = Field(ge=0, le=100, allow_inf_nan=False)
    message: str | None = Field(default=None, max_length=1024)
    updated_at: datetime
    seq: int | None = None
    """Internal: the report's place in its attempt's order of reports: a write of an older report
    (a resend held past a timeout) never replaces a newer one."""


class Checkpoint(BaseModel):
    """What a handler last saved in its run (`context.checkpoint`, `Continue`): the state, and its
    place in the order the handler saved them (a write of an older one is refused)."""

    model_config = ConfigDict(frozen=True)

    state: Any
    seq: int
    saved_at: datetime


class Job(BaseModel):
    """A job as stored. `owner`, `request_hash`, `expires_at` and the lease are internal."""

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    type: str
    status: JobStatus
    payload: Any
    """The payload, or None when it is kept in the data bucket (`payload_ref`)."""
    result: Any = None
    """The result, or None when it is kept in the data bucket (`result_ref`)."""
    error: JobError | None = None
    payload_ref: DataRef | None = None
    """Set when the payload is over `limits.INLINE_DATA_BYTES`: where it is kept instead."""
    result_ref: DataRef | None = None
    """Set when the result is over `limits.INLINE_DATA_BYTES`: where it is kept instead."""
    attempts: int = 0
    """Attempts made in the current run."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    run: int = 1
    """The job's incarnation: 1 at submit, one more at each retry or redrive. Every message and
    history entry carries it; a message or a dead letter of another run changes nothing."""
    delay_seconds: int = 0
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_after: datetime | None = None
    history: tuple[Attempt, ...] = ()
    progress: Progress | None = None
    cancel_requested_at: datetime | None = None
    correlation_id: str | None = None
    """The id the submitter's request carried (`X-Correlation-Id`, an ingest message's), bound
    to every log line about the job and carried by its messages."""
    lease_until: datetime | None = None
    """While `running`: when the claiming invocation's Lambda deadline passes."""
    attempt_request_id: str | None = None
    """While `running`: the Lambda request id of the invocation running the attempt."""
    lane: str = "default"
    """The lane whose worker runs the job (`jobline.lanes`), from its type's `timeout_s` at
    submit: the outbox sends its messages to that lane's queue."""
    checkpoint: Checkpoint | None = None
    """The state the handler last saved in this run (kept across its attempts and continuations;
    a retry starts a run without one)."""
    continue_at: datetime | None = None
    """While `running` between two invocations of a continuing attempt: when the handler asked to
    continue. The next invocation resumes the attempt (no new attempt, progress kept)."""
    lease_id: str | None = None
    """While `running`: the claim's unique token. Every write of the attempt (progress, outcome,
    requeue, cancel at a checkpoint) is conditioned on it, so a write of an earlier claim (a
    straggler, a worker thought dead) never changes a later one's job."""
    control_tokens: tuple[str, ...] = ()
    """Internal: the tokens of the latest API writes (submit, cancel, retry, redrive), at most
    `limits.MAX_CONTROL_TOKENS`: a write whose answer was lost recognises itself here, whatever was
    written since."""
    request_hash: str | None = None
    expires_at: int | None = None
    dispatch: int | None = None
    """Set while a message must be sent for the job (the outbox): when the message was asked for
    (epoch ms; at submit and at each retry). The stream's dispatcher sends one for every write
    that leaves it set; the claim (or any other way out of `queued`) removes it."""

    def is_expired(self, now_epoch: float) -> bool:
        """DynamoDB TTL deletes up to 48 h late: a job past `expires_at` is gone to readers."""
        return self.expires_at is not None and self.expires_at <= now_epoch


class SubmitRequest(BaseModel):
    """What a caller asks for when submitting a job: its payload inline, or the id of the upload
    that carries it (never both)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"not": {"required": ["payload", "payload_upload"]}},
    )

    type: str = Field(min_length=1, max_length=128)
    payload: Any = Field(default_factory=dict)
    payload_upload: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "pattern": UPLOAD_ID_PATTERN}),
    ] = Field(
        default=None,
        pattern=UPLOAD_ID_PATTERN,
        description="instead of `payload`: the `upload_id` of a payload uploaded with "
        "`POST /uploads` (a payload whose request body would pass 1 MiB)",
    )
    max_attempts: JsonInteger = Field(
        default=DEFAULT_MAX_ATTEMPTS, ge=MIN_ATTEMPTS, le=MAX_ATTEMPTS
    )
    delay_seconds: JsonInteger = Field(default=0, ge=0, le=MAX_DELAY_S)

    _payload_is_storable = field_validator("payload")(_storable_payload)

    @model_validator(mode="before")
    @classmethod
    def _no_null_upload(cls, data: Any) -> Any:
        """`payload_upload` is an upload id or absent: null is not one (as the schema says)."""
        if isinstance(data, dict) and data.get("payload_upload", "") is None:
            raise ValueError("payload_upload must be an upload id, not null")
        return data

    @model_validator(mode="after")
    def _one_payload(self) -> SubmitRequest:
        if self.payload_upload is not None and "payload" in self.model_fields_set:
            raise ValueError("give the payload or its payload_upload, not both")
        return self

    def with_payload(self, payload: Any) -> SubmitRequest:
        """This request with `payload` in place of its upload."""
        return self.model_copy(update={"payload": payload, "payload_upload": None})

    def request_hash(self) -> str:
        """What identifies the request for an idempotent replay (its payload, never the upload
        that carried it: a retry that uploaded again is the same request)."""
        body = self.model_dump(mode="json", exclude={"payload_upload"})
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()


class JobMessage(BaseModel):
    """The body of a jobs-queue message: ids and metadata only, never the payload."""

    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(min_length=1, max_length=64)
    owner: str = Field(min_length=1, max_length=256)
    job_type: str | None = None
    correlation_id: str | None = Field(default=None, max_length=256)
    run: int | None = Field(default=None, ge=1)
    """The job's run the message was sent for (None: sent before runs were numbered)."""


class Delivery(BaseModel):
    """One delivery of a job message to a worker invocation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: JobMessage
    receipt_handle: str | None = None
    queue: str | None = None
    """The name of the queue the message came from (its lane's: `JobQueue.postpone` needs it)."""
    """What `JobQueue.postpone` needs to deliver this message again later (None: it cannot be)."""
    request_id: str | None = None
    lease_until: datetime
    """The invocation's Lambda deadline (wall clock): the claim's lease ends here."""
    deadline: float
    """`time.monotonic()` value by which the handler must have returned (deadline minus margin)."""


class IngestSubmission(BaseModel):
    """A job submission arriving on the ingest queue from another system."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=128)
    payload: Any = Field(default_factory=dict)
    owner: str | None = Field(default=None, min_length=1, max_length=256)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    max_attempts: JsonInteger = Field(
        default=DEFAULT_MAX_ATTEMPTS, ge=MIN_ATTEMPTS, le=MAX_ATTEMPTS
    )
    delay_seconds: JsonInteger = Field(default=0, ge=0, le=MAX_DELAY_S)

    _payload_is_storable = field_validator("payload")(_storable_payload)

    @field_validator("owner")
    @classmethod
    def _owner_is_an_identity(cls, owner: str | None) -> str | None:
        problem = None if owner is None else identity_problem(owner)
        if problem is not None:
            raise ValueError(f"the owner {problem}")
        return owner

    def to_request(self) -> SubmitRequest:
        """The same submission as `POST /jobs` takes it."""
        return SubmitRequest(
            type=self.type,
            payload=self.payload,
            max_attempts=self.max_attempts,
            delay_seconds=self.delay_seconds,
        )


class JobFilter(BaseModel):
    """Filters of a job listing."""

    model_config = ConfigDict(frozen=True)

    status: JobStatus | None = None
    type: str | None = None


def is_visible(job: Job | JobSummary | None, owner: str, now: datetime) -> bool:
    """Whether `job` is one `owner` may see: theirs, and not expired (TTL deletes late)."""
    return (
        job is not None and job.owner == owner and not job.is_expired(now.timestamp())
    )


def matches(
    job: Job | JobSummary, owner: str, job_filter: JobFilter, now: datetime
) -> bool:
    """Whether a listing of `owner`'s jobs under `job_filter` may return `job`: it is visible to
    them and has the filter's status and type. Index keys are only where to look, not proof."""
    return (
        is_visible(job, owner, now)
        and (job_filter.status is None or job.status == job_filter.status)
        and (job_filter.type is None or job.type == job_filter.type)
    )


class JobSummary(BaseModel):
    """A job as a listing shows it: everything but its payload, result and history, so a page's
    size does not grow with what the jobs hold. The error is kept to `SUMMARY_TEXT_CHARS` of its
    type and message (`error_truncated` says when it was cut); the job itself has it whole.
    `owner` and `expires_at` are internal, for the listing's visibility filter (`matches`)."""

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    type: str
    status: JobStatus
    run: int = 1
    error: JobError | None = None
    error_truncated: bool = False
    attempts: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_after: datetime | None = None
    progress: Progress | None = None
    cancel_requested_at: datetime | None = None
    correlation_id: str | None = None
    expires_at: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _bounded_error(cls, data: Any) -> Any:
        """Cut the error's type and message to `SUMMARY_TEXT_CHARS`, saying so."""
        if not isinstance(data, dict) or data.get("error") is None:
            return data
        error = data["error"]
        if isinstance(error, JobError):
            error = error.model_dump()
        text = {name: str(error.get(name, "")) for name in ("type", "message")}
        if all(len(value) <= SUMMARY_TEXT_CHARS for value in text.values()):
            return data
        return {
            **data,
            "error": {name: value[:SUMMARY_TEXT_CHARS] for name, value in text.items()},
            "error_truncated": True,
        }

    @classmethod
    def of(cls, job: Job) -> JobSummary:
        """The summary of a stored job."""
        return cls.model_validate(job.model_dump(include=set(cls.model_fields)))

    def is_expired(self, now_epoch: float) -> bool:
        """See `Job.is_expired`."""
        return self.expires_at is not None and self.expires_at <= now_epoch

    def encoded_size(self) -> int:
        """Bytes of this summary as JSON (UTF-8): what a listing page's byte budget counts."""
        return len(self.model_dump_json().encode())


class JobPage(BaseModel):
    """One page of a listing, as summaries; `next_cursor` is opaque and signed (None: the last
    page). A page may hold fewer jobs than asked for and still have a cursor (`JobRepository.query`)."""

    items: list[JobSummary]
    next_cursor: str | None = None
