"""HTTP shapes: what the API returns. Requests use `jobline.models.SubmitRequest` directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobline.limits import (
    INLINE_DATA_BYTES,
    LIST_PAGE_MAX_BYTES,
    MAX_REQUEST_BODY_BYTES,
    SUMMARY_TEXT_CHARS,
)
from jobline.models import Job, JobError, JobPage, JobStatus, JobSummary
from jobline.registry import JobType
from jobline.usecases.claim_check import NO_LINKS, DataLink, DataLinks, Upload
from pydantic import BaseModel, Field

_KEPT = f"over {INLINE_DATA_BYTES // 1024} KiB of JSON, kept in the data bucket"


def _link_fields(name: str, link: DataLink | None) -> dict[str, Any]:
    """The `{name}_url`, `_url_expires_at`, `_size` and `_sha256` fields of a link (all null
    without one)."""
    return {
        f"{name}_url": None if link is None else link.url,
        f"{name}_url_expires_at": None if link is None else link.expires_at,
        f"{name}_size": None if link is None else link.size,
        f"{name}_sha256": None if link is None else link.sha256,
    }


class ProgressOut(BaseModel):
    """What a running handler last reported."""

    percent: float
    message: str | None
    updated_at: datetime


class AttemptOut(BaseModel):
    """One attempt in a job's history: attempts are numbered within a run (a retry starts the
    next run at attempt 1). `finished_at` is None while it runs, or if its worker died."""

    run: int
    attempt: int
    started_at: datetime
    finished_at: datetime | None
    error: JobError | None
    request_id: str | None
    duration_ms: int | None


class JobOut(BaseModel):
    """A job as a caller sees it. A payload or a result over 64 KiB of JSON is kept in the data
    bucket: `payload` or `result` is then null, and `payload_url` or `result_url` a presigned URL
    that GETs it (no credentials: send no Authorization header) until `..._url_expires_at`; its
    bytes are `..._size` long and their SHA-256 is `..._sha256`."""

    id: str
    type: str
    status: JobStatus
    payload: Any = Field(description=f"the payload; null when it is {_KEPT}")
    payload_url: str | None = Field(
        description=f"set when the payload is {_KEPT}: a presigned GET of its JSON"
    )
    payload_url_expires_at: datetime | None = Field(
        description="when `payload_url` stops working (read the job again for another)"
    )
    payload_size: int | None = Field(description="bytes at `payload_url`")
    payload_sha256: str | None = Field(
        description="SHA-256 (hex) of the bytes at `payload_url`"
    )
    result: Any = Field(description=f"the result; null when it is {_KEPT}")
    result_url: str | None = Field(
        description=f"set when the result is {_KEPT}: a presigned GET of its JSON"
    )
    result_url_expires_at: datetime | None = Field(
        description="when `result_url` stops working (read the job again for another)"
    )
    result_size: int | None = Field(description="bytes at `result_url`")
    result_sha256: str | None = Field(
        description="SHA-256 (hex) of the bytes at `result_url`"
    )
    error: JobError | None
    run: int
    """The job's run: 1 at submit, one more at each retry or redrive."""
    attempts: int
    """Attempts made in the current run."""
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime | None
    progress: ProgressOut | None
    cancel_requested_at: datetime | None
    history: list[AttemptOut]
    correlation_id: str | None

    @classmethod
    def of(cls, job: Job, links: DataLinks = NO_LINKS) -> JobOut:
        """The public view of a stored job, with `links` to what the data bucket keeps of it."""
        return cls.model_validate(
            {
                **job.model_dump(
                    include={
                        **{name: True for name in cls.model_fields},
                        "progress": set(ProgressOut.model_fields),
                        "history": {"__all__": set(AttemptOut.model_fields)},
                    }
                ),
                **_link_fields("payload", links.payload),
                **_link_fields("result", links.result),
            }
        )


class JobSummaryOut(BaseModel):
    """A job in a listing: every field of the job but `payload`, `result` and `history`, which a
    listing leaves out whatever their size (GET /jobs/{id} has the job whole). The error is
    bounded: `error_truncated` says when it was cut."""

    id: str
    type: str
    status: JobStatus
    run: int
    error: JobError | None
    error_truncated: bool = Field(
        description="true when `error` was cut to its first "
        f"{SUMMARY_TEXT_CHARS} characters of type and message; the job has it whole"
    )
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime | None
    progress: ProgressOut | None
    cancel_requested_at: datetime | None
    correlation_id: str | None

    @classmethod
    def of(cls, summary: JobSummary) -> JobSummaryOut:
        """The public view of a summary."""
        return cls.model_validate(
            summary.model_dump(
                include={
                    **{name: True for name in cls.model_fields},
                    "progress": set(ProgressOut.model_fields),
                }
            )
        )


class JobPageOut(BaseModel):
    """One page of a listing, newest first, as summaries (`JobSummaryOut`)."""

    items: list[JobSummaryOut] = Field(
        description="at most `limit` jobs, fewer when their JSON would pass "
        f"{LIST_PAGE_MAX_BYTES:,} bytes or when filters thin what one call reads; "
        "possibly none"
    )
    next_cursor: str | None = Field(
        description="set whenever more jobs may remain, even after a short page: pass it "
        "back as `cursor`; null on the last page"
    )

    @classmethod
    def of(cls, page: JobPage) -> JobPageOut:
        """The public view of a page."""
        return cls(
            items=[JobSummaryOut.of(job) for job in page.items],
            next_cursor=page.next_cursor,
        )


class JobTypeOut(BaseModel):
    """A registered job type."""

    name: str
    description: str
    input_schema: dict[str, Any]

    @classmethod
    def of(cls, job_type: JobType[Any]) -> JobTypeOut:
        """The public view of a job type."""
        return cls(
            name=job_type.name,
            description=job_type.description,
            input_schema=job_type.input_schema(),
        )


class UploadOut(BaseModel):
    """Where to upload one payload, then submit it as `payload_upload`: a `multipart/form-data`
    POST to `url` of every `fields` entry, then the payload's JSON as the part named `file`
    (last), without an Authorization header, before `expires_at`. S3 answers 204; it refuses a
    file over `max_bytes`. An upload no submit names is deleted after a day."""

    upload_id: str
    url: str
    fields: dict[str, str]
    expires_at: datetime
    max_bytes: int

    @classmethod
    def of(cls, upload: Upload) -> UploadOut:
        """The public view of an upload form."""
        return cls(
            upload_id=upload.upload_id,
            url=upload.url,
            fields=upload.fields,
            expires_at=upload.expires_at,
            max_bytes=upload.max_bytes,
        )


class FieldError(BaseModel):
    """One invalid field: where (`["body", "payload", "seconds"]`), what is wrong, its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error answer: a message, or (422) the fields that are wrong."""

    detail: str | list[FieldError]


class SubmitUnavailableOut(ErrorOut):
    """503 from a submit whose write went unanswered: the job may be stored under `job_id` (and
    then it runs); repeating the request with the same Idempotency-Key, or GETting the job,
    tells. Absent when the store refused the write outright."""

    job_id: str | None = None


class GatewayError(BaseModel):
    """API Gateway's own answer when its JWT authorizer refuses the token (the request never
    reaches the function)."""

    message: str


ERROR_DESCRIPTIONS = {
    400: "the body is not a JSON object sent as `Content-Type: application/json` (not JSON, "
    "not UTF-8, another content type, or no body): `the body must be a JSON object "
    "(Content-Type: application/json)`; or the cursor cannot be resumed from (changed, "
    "another listing's, or issued before an upgrade): start from the first page; or "
    "`payload_upload` names no upload of the caller's (none was made, or it was deleted a "
    "day after): upload the payload again",
    401: "no identity, or one that is not a valid identity (the detail says why); "
    'API Gateway\'s JWT authorizer answers `{"message": "Unauthorized"}` itself',
    404: "no such job visible to the caller (unknown, malformed, another owner's, expired)",
    409: "the job's state does not allow it, or the Idempotency-Key was used with another "
    "request",
    413: f"the body is over {MAX_REQUEST_BODY_BYTES // 1024 // 1024} MiB (upload the payload "
    "first: `POST /uploads`), or the payload over the deployment's limit (5 MiB by default)",
    422: "a field is invalid, field by field (`loc`, `msg`, `type`): an unknown job type, "
    "a payload the type refuses (an uploaded one included), a JSON body that is not an "
    "object, a bad parameter",
    503: "the job store or the queue is unavailable; nothing was changed",
}
SUBMIT_UNAVAILABLE = {
    "model": SubmitUnavailableOut,
    "description": "the job store is unavailable; with `job_id` (and `Location`), the write "
    "went unanswered and the job may be stored, and then it runs: repeat the request with the "
    "same Idempotency-Key, or GET the job, to know",
    "headers": {
        "Location": {
            "description": "the URL the job has if it was stored (with `job_id`)",
            "schema": {"type": "string"},
        },
        "Retry-After": {
            "description": "seconds to wait before repeating the request",
            "schema": {"type": "string"},
        },
    },
}
_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "`Bearer`: the HTTP API's JWT authorizer",
        "schema": {"type": "string"},
    }
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of the errors a route answers with, each `ErrorOut`."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "model": ErrorOut,
            "description": ERROR_DESCRIPTIONS[status],
        }
        if status == 401:
            response["model"] = ErrorOut | GatewayError
            response["headers"] = _AUTHENTICATE
        responses[status] = response
    return responses


class Health(BaseModel):
    """Liveness answer."""

    status: str = "ok"
