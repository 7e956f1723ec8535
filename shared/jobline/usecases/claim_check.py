"""The claim check: a payload or a result over `limits.INLINE_DATA_BYTES` (canonical JSON) is kept
in the data bucket, and the job's item keeps a reference to it (`DataRef`: key, size, sha256), so
the item stays under DynamoDB's 400 KB whatever a job carries.

Who writes what, and in which order (an item never names an object that was not written first):
- the submit writes the payload under `payloads/{job_id}/{sha256}.json`, then creates the item
  naming it (a lost create leaves an object no item names: the bucket's lifecycle deletes it; a
  replay writes the same bytes under the same key);
- a caller whose payload would not fit in a request body (`limits.MAX_REQUEST_BODY_BYTES`) first
  uploads it with a presigned POST form (`new_upload`) under `uploads/{owner}/{upload_id}.json`,
  which only that caller's submit can name (`uploaded_payload`); the submit checks it like an
  inline payload and writes it as above;
- the worker reads the payload before the handler runs, checking its size and digest, and writes
  a large result under `results/{job_id}/{lease_id}.json` before the outcome write that names it,
  which is fenced by the same lease id: a stale attempt's object is never named by the job, and
  the lifecycle deletes it;
- a read answers presigned URLs (`links`) for what the item does not hold;
- a retry writes the payload again in place (`keep_alive`), so the lifecycle, which counts from
  an object's last write, keeps it as long as the job's new run is kept.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jobline.errors import (
    ConfigurationError,
    DataNotFound,
    DataTooLarge,
    DataUnavailable,
    InvalidPayload,
    PayloadTooLarge,
    StorageUnavailable,
    UploadNotFound,
)
from jobline.limits import DATA_URL_TTL_S, INLINE_DATA_BYTES
from jobline.logging import get_logger
from jobline.models import DataRef, Job
from jobline.ports import BlobStore
from jobline.validation import json_problem

log = get_logger(__name__)


@dataclass(frozen=True)
class DataLink:
    """Where a caller downloads a payload or a result kept in the data bucket: a presigned URL
    valid until `expires_at`, and what the download must be (size in bytes, SHA-256 hex)."""

    url: str
    expires_at: datetime
    size: int
    sha256: str


@dataclass(frozen=True)
class DataLinks:
    """The links of a job's data kept in the bucket (None: held in the item, or none)."""

    payload: DataLink | None = None
    result: DataLink | None = None


NO_LINKS = DataLinks()


@dataclass(frozen=True)
class Upload:
    """Where a caller uploads one payload: a `multipart/form-data` POST of `fields`, then the
    file, to `url`, before `expires_at`; at most `max_bytes`. The submit names it by `upload_id`."""

    upload_id: str
    url: str
    fields: dict[str, str]
    expires_at: datetime
    max_bytes: int


def digest(data: bytes) -> str:
    """SHA-256 of `data`, hex."""
    return hashlib.sha256(data).hexdigest()


def payload_key(job_id: str, sha256: str) -> str:
    """A submitted payload's key: its job's, and its digest (a conflicting request with the same
    idempotency key never overwrites the job's payload)."""
    return f"payloads/{job_id}/{sha256}.json"


def result_key(job_id: str, lease_id: str) -> str:
    """A result's key: its job's, and the claim of the attempt that returned it."""
    return f"results/{job_id}/{lease_id}.json"


def upload_key(owner: str, upload_id: str) -> str:
    """An upload's key: under its owner (hashed: an identity may hold any character), so that a
    submit finds only its own caller's uploads."""
    owner_part = hashlib.sha256(owner.encode()).hexdigest()[:32]
    return f"uploads/{owner_part}/{upload_id}.json"


@dataclass(frozen=True)
class ClaimCheck:
    """The data bucket as the use cases use it (`blobs` None: the deployment has none, and data
    over `inline_bytes` is refused)."""

    blobs: BlobStore | None
    clock: Callable[[], datetime]
    max_payload_bytes: int
    inline_bytes: int = INLINE_DATA_BYTES
    url_ttl_s: int = DATA_URL_TTL_S

    def _store(self) -> BlobStore:
        if self.blobs is None:
            raise ConfigurationError(
                "large payloads and results need a data bucket (JOBLINE_DATA_BUCKET)"
            )
        return self.blobs

    # ----------------------------------------------------------------- the submit
    def new_upload(self, owner: str) -> Upload:
        """A presigned form for `owner` to upload one payload of up to `max_payload_bytes`."""
        upload_id = uuid.uuid4().hex
        key = upload_key(owner, upload_id)
        url, fields = self._store().upload_form(
            key, self.max_payload_bytes, self.url_ttl_s
        )
        expires_at = self.clock() + timedelta(seconds=self.url_ttl_s)
        log.info("data.upload_offered", upload_id=upload_id)
        return Upload(upload_id, url, fields, expires_at, self.max_payload_bytes)

    def uploaded_payload(self, owner: str, upload_id: str, job_type: str) -> Any:
        """The payload `owner` uploaded as `upload_id`, decoded: `UploadNotFound`,
        `PayloadTooLarge`, or `InvalidPayload` when it is not JSON a payload may be."""
        try:
            data = self._store().get(
                upload_key(owner, upload_id), self.max_payload_bytes
            )
        except DataNotFound:
            raise UploadNotFound(upload_id) from None
        except DataTooLarge as exc:
            raise PayloadTooLarge(exc.size, exc.limit) from None
        try:
            payload = json.loads(data, parse_constant=_no_constant)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise _not_a_payload(job_type, f"the upload is not JSON: {exc}") from None
        problem = json_problem(payload)
        if problem is not None:
            raise _not_a_payload(job_type, f"the payload {problem}")
        return payload

    def keep_payload(self, job_id: str, data: bytes) -> DataRef | None:
        """Write a payload over `inline_bytes` (its canonical JSON, `data`) to the bucket and
        return its reference; None for one the item holds. Over `inline_bytes` without a bucket,
        `PayloadTooLarge`."""
        if len(data) <= self.inline_bytes:
            return None
        if self.blobs is None:
            raise PayloadTooLarge(len(data), self.inline_bytes)
        ref = DataRef(key="", size=len(data), sha256=digest(data))
        ref = ref.model_copy(update={"key": payload_key(job_id, ref.sha256)})
        self.blobs.put(ref.key, data, ref.sha256)
        return ref

    # ----------------------------------------------------------------- the worker
    def payload_of(self, job: Job) -> Any:
        """The job's payload, read from the bucket when the item holds a reference, and checked
        against it (`DataUnavailable`: retryable when the bucket was unavailable)."""
        ref = job.payload_ref
        if ref is None:
            return job.payload
        try:
            data = self._store().get(ref.key, ref.size)
        except StorageUnavailable as exc:
            raise DataUnavailable(
                "PayloadUnavailable", exc.message, retryable=True
            ) from exc
        except (DataNotFound, DataTooLarge, ConfigurationError) as exc:
            raise DataUnavailable("PayloadGone", exc.message, retryable=False) from exc
        if len(data) != ref.size or digest(data) != ref.sha256:
            message = (
                "the stored payload is not the one submitted (size or sha256 differ)"
            )
            raise DataUnavailable("PayloadCorrupt", message, retryable=False)
        return json.loads(data)

    def keep_result(self, job: Job, data: bytes) -> DataRef | None:
        """Write a result over `inline_bytes` (its canonical JSON, `data`) to the bucket under the
        attempt's claim, before the outcome write names it; None for one the item holds."""
        if len(data) <= self.inline_bytes:
            return None
        if self.blobs is None:
            message = (
                f"result is {len(data)} bytes; over {self.inline_bytes} a result needs the "
                "data bucket, which this deployment has not"
            )
            raise DataUnavailable("ResultTooLarge", message, retryable=False)
        lease = job.lease_id or uuid.uuid4().hex
        ref = DataRef(
            key=result_key(job.id, lease), size=len(data), sha256=digest(data)
        )
        try:
            self.blobs.put(ref.key, data, ref.sha256)
        except StorageUnavailable as exc:
            raise DataUnavailable(
                "ResultNotStored", exc.message, retryable=True
            ) from exc
        return ref

    # ----------------------------------------------------------------- reads, retries
    def links(self, job: Job) -> DataLinks:
        """Presigned downloads of what the job keeps in the bucket (signed here, no call)."""
        if job.payload_ref is None and job.result_ref is None:
            return NO_LINKS
        return DataLinks(
            payload=self._link(job.payload_ref), result=self._link(job.result_ref)
        )

    def _link(self, ref: DataRef | None) -> DataLink | None:
        if ref is None:
            return None
        expires_at = self.clock() + timedelta(seconds=self.url_ttl_s)
        url = self._store().download_url(ref.key, self.url_ttl_s)
        return DataLink(url, expires_at, ref.size, ref.sha256)

    def keep_alive(self, job: Job) -> None:
        """Before a retry: write the job's payload again in place, so that the bucket keeps it
        as long as the new run's job (a payload already gone is left to fail the attempt)."""
        if job.payload_ref is None:
            return
        try:
            self._store().touch(job.payload_ref.key)
        except DataNotFound:
            log.warning("data.payload_gone", job_id=job.id)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _not_a_payload(job_type: str, message: str) -> InvalidPayload:
    return InvalidPayload(
        job_type, [{"loc": ["payload_upload"], "msg": message, "type": "json"}]
    )
