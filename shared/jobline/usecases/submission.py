"""Submit a job: validate, then one write, the job's row (a payload too large for it written to the
data bucket first: `ClaimCheck`). Its message is sent by the outbox (the table's stream and its
dispatcher), so a submit that stored the job has queued it, whatever happens to this process next. An idempotency key makes a replay return the original job; the
same key with another request conflicts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from jobline import creation, metrics
from jobline.errors import (
    ConditionFailed,
    IdempotencyConflict,
    InvalidPayload,
    PayloadTooLarge,
    StorageUnavailable,
    SubmitOutcomeUnknown,
)
from jobline.lanes import Lane, Lanes
from jobline.logging import get_logger
from jobline.models import Job, SubmitRequest
from jobline.ports import JobRepository
from jobline.registry import JobTypeRegistry
from jobline.usecases.claim_check import ClaimCheck
from jobline.validation import canonical_json

log = get_logger(__name__)


@dataclass(frozen=True)
class Submitted:
    """The job a submit produced; `created` is False for an idempotent replay."""

    job: Job
    created: bool


@dataclass(frozen=True)
class Submission:
    """The submit use case over the repository and the job types (the outbox sends the message)."""

    repository: JobRepository
    registry: JobTypeRegistry
    clock: Callable[[], datetime]
    max_payload_bytes: int
    lanes: Lanes
    claim_check: ClaimCheck

    def submit(
        self,
        owner: str,
        request: SubmitRequest,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> Submitted:
        """Validate and store a job (see the module docstring). `SubmitOutcomeUnknown` when the
        store did not answer: the job may be stored (and then runs); a replay with the same key
        finds out. A payload over `limits.INLINE_DATA_BYTES` is written to the data bucket
        first, the job naming it (`ClaimCheck`); one uploaded before (`payload_upload`) is read
        from there and checked as if it came inline."""
        job_type = self.registry.get(request.type)
        if request.payload_upload is not None:
            request = request.with_payload(
                self.claim_check.uploaded_payload(
                    owner, request.payload_upload, request.type
                )
            )
        job_type.parse(request.payload)
        lane = self.lanes.lane_for(job_type.timeout_s) or Lane.DEFAULT
        try:
            payload_text = canonical_json(request.payload)
        except ValueError as exc:
            not_json = {"loc": ["payload"], "msg": "NaN and Infinity are not JSON"}
            raise InvalidPayload(request.type, [{**not_json, "type": "json"}]) from exc
        payload_data = payload_text.encode()
        size = len(payload_data)
        if size > self.max_payload_bytes:
            raise PayloadTooLarge(size, self.max_payload_bytes)

        request_hash = request.request_hash()
        if idempotency_key is None:
            job_id = uuid.uuid4().hex
        else:
            job_id = creation.derived_id(owner, idempotency_key)
        now = self.clock()
        token = uuid.uuid4().hex
        job = creation.submitted(
            job_id, owner, request, request_hash, now, correlation_id, token, lane
        )
        payload_ref = self.claim_check.keep_payload(job.id, payload_data)
        if payload_ref is not None:
            job = job.model_copy(update={"payload": None, "payload_ref": payload_ref})
        try:
            self.repository.create(job, now, token=token)
        except ConditionFailed as lost:
            return _replay(lost.current, owner, request_hash, idempotency_key)
        except StorageUnavailable as exc:
            log.error("job.submit_unknown", job_id=job.id, job_type=job.type)
            raise SubmitOutcomeUnknown(job.id, exc.message) from exc
        delayed = (
            {"delay_seconds": request.delay_seconds} if request.delay_seconds else {}
        )
        log.info(
            "job.submitted",
            job_id=job.id,
            **delayed,
            **metrics.emf(job.type, counts=["JobsSubmitted"]),
        )
        return Submitted(job=job, created=True)


def _replay(
    current: Job | None, owner: str, request_hash: str, idempotency_key: str | None
) -> Submitted:
    """A create lost to an existing job: the original (same key and request) or a conflict."""
    if idempotency_key is None or current is None:
        raise StorageUnavailable("job id collision")
    if current.owner != owner or current.request_hash != request_hash:
        log.info("job.idempotency_conflict", job_id=current.id)
        raise IdempotencyConflict(idempotency_key)
    log.info("job.idempotent_replay", job_id=current.id, job_type=current.type)
    return Submitted(job=current, created=False)
