"""What the API returns, as typed values. Parsing is lenient about what it does not know: a field
the API adds later is kept in `.raw` and ignored here, and a status it adds later still parses."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobline_client.errors import InvalidResponse


class JobStatus(enum.StrEnum):
    """Where a job is in its life. A status this client does not know yet parses to a member
    of its own (never final), so a newer API does not break listing or waiting."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD_LETTERED = "dead_lettered"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        """True when the job will not change again on its own."""
        return self.value in _FINAL

    @classmethod
    def _missing_(cls, value: object) -> JobStatus | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member


_FINAL = frozenset({"succeeded", "failed", "cancelled", "dead_lettered", "rejected"})


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidResponse(f"{what} is not a JSON object")
    return value


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidResponse(f"{name} is not a timestamp: {value!r}")
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidResponse(f"{name} is not a timestamp: {value!r}") from exc


def _required_time(value: Any, name: str) -> datetime:
    parsed = _time(value, name)
    if parsed is None:
        raise InvalidResponse(f"the job has no {name}")
    return parsed


def _int(value: Any, name: str, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidResponse(f"{name} is not an integer: {value!r}")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidResponse(f"{name} is not a string: {value!r}")
    return value


def _optional_str(value: Any, name: str) -> str | None:
    return None if value is None else _str(value, name)


@dataclass(frozen=True)
class JobError:
    """Why an attempt or a job failed: an error type name and a message."""

    type: str
    message: str

    @classmethod
    def from_dict(cls, data: Any) -> JobError | None:
        """Parse `{"type", "message"}`, or None for null."""
        if data is None:
            return None
        data = _object(data, "error")
        return cls(
            type=_str(data.get("type", ""), "error.type"),
            message=_str(data.get("message", ""), "error.message"),
        )


@dataclass(frozen=True)
class Progress:
    """What a running handler last reported."""

    percent: float
    message: str | None
    updated_at: datetime | None

    @classmethod
    def from_dict(cls, data: Any) -> Progress | None:
        """Parse `{"percent", "message", "updated_at"}`, or None for null."""
        if data is None:
            return None
        data = _object(data, "progress")
        percent = data.get("percent", 0)
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise InvalidResponse(f"progress.percent is not a number: {percent!r}")
        return cls(
            percent=float(percent),
            message=_optional_str(data.get("message"), "progress.message"),
            updated_at=_time(data.get("updated_at"), "progress.updated_at"),
        )


@dataclass(frozen=True)
class DataLink:
    """Where a payload or a result too large for the job's JSON is (over 64 KiB): a presigned URL
    that GETs it without credentials until `expires_at`; `size` bytes whose SHA-256 is `sha256`.
    `Client.get` follows it: `Job.payload` and `Job.result` hold the data."""

    url: str
    expires_at: datetime | None
    size: int
    sha256: str

    @classmethod
    def from_job(cls, data: Mapping[str, Any], name: str) -> DataLink | None:
        """The link of `name` ("payload", "result") in a job's JSON, or None (held inline)."""
        url = data.get(f"{name}_url")
        if url is None:
            return None
        return cls(
            url=_str(url, f"{name}_url"),
            expires_at=_time(
                data.get(f"{name}_url_expires_at"), f"{name}_url_expires_at"
            ),
            size=_int(data.get(f"{name}_size"), f"{name}_size"),
            sha256=_str(data.get(f"{name}_sha256"), f"{name}_sha256"),
        )


@dataclass(frozen=True)
class Attempt:
    """One attempt in a job's history; `finished_at` is None while it runs or if its worker died.
    Attempts are numbered within a run: a retry starts run 2 at attempt 1."""

    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    error: JobError | None
    request_id: str | None
    duration_ms: int | None
    run: int = 1

    @classmethod
    def from_dict(cls, data: Any) -> Attempt:
        """Parse one history entry."""
        data = _object(data, "history entry")
        duration = data.get("duration_ms")
        return cls(
            attempt=_int(data.get("attempt"), "history.attempt"),
            started_at=_time(data.get("started_at"), "history.started_at"),
            finished_at=_time(data.get("finished_at"), "history.finished_at"),
            error=JobError.from_dict(data.get("error")),
            request_id=_optional_str(data.get("request_id"), "history.request_id"),
            duration_ms=None
            if duration is None
            else _int(duration, "history.duration_ms"),
            run=_int(data.get("run", 1), "history.run"),
        )


@dataclass(frozen=True)
class Job:
    """A job as the API shows it. `raw` is the API's JSON object exactly as received."""

    id: str
    type: str
    status: JobStatus
    payload: Any
    result: Any
    error: JobError | None
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime | None
    progress: Progress | None
    cancel_requested_at: datetime | None
    history: tuple[Attempt, ...]
    correlation_id: str | None = None
    """The request's `X-Correlation-Id` (or the one the API made up): the key to the job's logs."""
    run: int = 1
    """The job's run: 1 at submit, one more at each retry or redrive (`attempts` counts the
    current run's)."""
    payload_link: DataLink | None = None
    """Set when the payload is kept in the data bucket (`Client.get` downloads it into
    `payload`; the API's own JSON, `raw`, has `payload` null)."""
    result_link: DataLink | None = None
    """Set when the result is kept in the data bucket (`Client.get` downloads it into
    `result`)."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        """True once the job reached a final state (see `JobStatus.is_final`)."""
        return self.status.is_final

    @classmethod
    def from_dict(cls, data: Any) -> Job:
        """Parse the API's job JSON; fields this client does not know are ignored (kept in `raw`)."""
        data = _object(data, "job")
        history = data.get("history")
        if history is None:
            history = []
        if not isinstance(history, list):
            raise InvalidResponse("history is not a list")
        return cls(
            id=_str(data.get("id"), "id"),
            type=_str(data.get("type"), "type"),
            status=JobStatus(_str(data.get("status"), "status")),
            payload=data.get("payload"),
            result=data.get("result"),
            error=JobError.from_dict(data.get("error")),
            attempts=_int(data.get("attempts"), "attempts"),
            max_attempts=_int(data.get("max_attempts"), "max_attempts"),
            created_at=_required_time(data.get("created_at"), "created_at"),
            updated_at=_required_time(data.get("updated_at"), "updated_at"),
            started_at=_time(data.get("started_at"), "started_at"),
            finished_at=_time(data.get("finished_at"), "finished_at"),
            run_after=_time(data.get("run_after"), "run_after"),
            progress=Progress.from_dict(data.get("progress")),
            cancel_requested_at=_time(
                data.get("cancel_requested_at"), "cancel_requested_at"
            ),
            history=tuple(Attempt.from_dict(entry) for entry in history),
            correlation_id=_optional_str(data.get("correlation_id"), "correlation_id"),
            run=_int(data.get("run", 1), "run"),
            payload_link=DataLink.from_job(data, "payload"),
            result_link=DataLink.from_job(data, "result"),
            raw=data,
        )

    @property
    def links(self) -> dict[str, DataLink]:
        """The links of what is kept in the data bucket, by field ("payload", "result")."""
        links = {"payload": self.payload_link, "result": self.result_link}
        return {name: link for name, link in links.items() if link is not None}

    def as_json(self) -> dict[str, Any]:
        """The API's JSON of the job (`raw`) with its payload and result as this job holds them
        (downloaded when they were linked)."""
        return {**self.raw, "payload": self.payload, "result": self.result}


@dataclass(frozen=True)
class JobSummary:
    """A job as a listing shows it: every field of `Job` but `payload`, `result` and `history`
    (`Client.get` reads the job whole). `error` is bounded: `error_truncated` is True when the
    API cut its type or message. `raw` is the API's JSON object exactly as received."""

    id: str
    type: str
    status: JobStatus
    error: JobError | None
    error_truncated: bool
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime | None
    progress: Progress | None
    cancel_requested_at: datetime | None
    correlation_id: str | None = None
    run: int = 1
    """The job's run (see `Job.run`)."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        """True once the job reached a final state (see `JobStatus.is_final`)."""
        return self.status.is_final

    @classmethod
    def from_dict(cls, data: Any) -> JobSummary:
        """Parse one item of `GET /jobs`; fields this client does not know are kept in `raw`."""
        data = _object(data, "job summary")
        truncated = data.get("error_truncated", False)
        if not isinstance(truncated, bool):
            raise InvalidResponse(f"error_truncated is not a boolean: {truncated!r}")
        return cls(
            id=_str(data.get("id"), "id"),
            type=_str(data.get("type"), "type"),
            status=JobStatus(_str(data.get("status"), "status")),
            error=JobError.from_dict(data.get("error")),
            error_truncated=truncated,
            attempts=_int(data.get("attempts"), "attempts"),
            max_attempts=_int(data.get("max_attempts"), "max_attempts"),
            created_at=_required_time(data.get("created_at"), "created_at"),
            updated_at=_required_time(data.get("updated_at"), "updated_at"),
            started_at=_time(data.get("started_at"), "started_at"),
            finished_at=_time(data.get("finished_at"), "finished_at"),
            run_after=_time(data.get("run_after"), "run_after"),
            progress=Progress.from_dict(data.get("progress")),
            cancel_requested_at=_time(
                data.get("cancel_requested_at"), "cancel_requested_at"
            ),
            correlation_id=_optional_str(data.get("correlation_id"), "correlation_id"),
            run=_int(data.get("run", 1), "run"),
            raw=data,
        )


@dataclass(frozen=True)
class JobTypeInfo:
    """A job type the service runs, with the JSON Schema of its payload."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> JobTypeInfo:
        """Parse one entry of `GET /job-types`."""
        data = _object(data, "job type")
        return cls(
            name=_str(data.get("name"), "name"),
            description=_str(data.get("description", ""), "description"),
            input_schema=_object(data.get("input_schema", {}), "input_schema"),
            raw=data,
        )


@dataclass(frozen=True)
class JobPage:
    """One page of a listing, as summaries; pass `next_cursor` back for the next one (None: the
    last page). A page may hold fewer jobs than asked for, even none, and still have a cursor."""

    items: tuple[JobSummary, ...]
    next_cursor: str | None

    @classmethod
    def from_dict(cls, data: Any) -> JobPage:
        """Parse `{"items", "next_cursor"}`."""
        data = _object(data, "page")
        items = data.get("items")
        if not isinstance(items, list):
            raise InvalidResponse("items is not a list")
        return cls(
            items=tuple(JobSummary.from_dict(item) for item in items),
            next_cursor=_optional_str(data.get("next_cursor"), "next_cursor"),
        )
