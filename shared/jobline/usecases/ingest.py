"""Submissions from other systems (the ingest queue): validated and submitted exactly like
`POST /jobs`, idempotent per message; an invalid submission is stored as a `rejected` job with the
reason, visible to its owner, so it is never lost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from jobline import creation, metrics
from jobline.errors import (
    ConditionFailed,
    IdempotencyConflict,
    InvalidPayload,
    PayloadTooLarge,
    UnknownJobType,
)
from jobline.logging import get_logger
from jobline.models import IngestSubmission, JobError
from jobline.ports import JobRepository
from jobline.usecases.submission import Submission, Submitted
from jobline.validation import canonical_json, identity_problem, json_problem

log = get_logger(__name__)

MAX_REASON_CHARS = 4096


def _text(value: str) -> str:
    """`value` as valid Unicode (a lone surrogate becomes `?`), fit to store."""
    return value.encode("utf-8", "replace").decode()


def _locations(errors: list[Any], empty: str = "") -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or empty}: {err['msg']}"
        for err in errors
    )


@dataclass(frozen=True)
class Ingest:
    """The ingest use case: submit through `Submission`, reject into the repository."""

    submission: Submission
    repository: JobRepository
    clock: Callable[[], datetime]
    max_payload_bytes: int
    retention: timedelta

    def ingest(
        self,
        body: Any,
        *,
        message_id: str,
        default_owner: str,
        correlation_id: str | None = None,
    ) -> Submitted:
        """Submit `body` (decoded JSON, or the raw text that was not JSON). Its job id
        comes from its `idempotency_key`, else from `message_id`, so a redelivery is a replay."""
        owner = default_owner
        named = body.get("owner") if isinstance(body, dict) else None
        if isinstance(named, str) and identity_problem(named) is None:
            owner = named
        try:
            parsed = IngestSubmission.model_validate(body)
            owner = parsed.owner or default_owner
            key = parsed.idempotency_key or f"sqs-message:{message_id}"
            return self.submission.submit(
                owner, parsed.to_request(), key, correlation_id
            )
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            reason = _locations(list(errors), empty="submission")
            return self._reject(
                body,
                owner,
                message_id,
                "InvalidSubmission",
                reason,
                correlation_id,
            )
        except (
            UnknownJobType,
            InvalidPayload,
            PayloadTooLarge,
            IdempotencyConflict,
        ) as exc:
            reason = exc.message
            if isinstance(exc, InvalidPayload):
                reason += ": " + _locations(exc.errors)
            return self._reject(
                body,
                owner,
                message_id,
                type(exc).__name__,
                reason,
                correlation_id,
            )

    def _reject(
        self,
        body: Any,
        owner: str,
        message_id: str,
        error_type: str,
        reason: str,
        correlation_id: str | None,
    ) -> Submitted:
        now = self.clock()
        raw = body if isinstance(body, dict) else {"body": body}
        payload = raw.get("payload", raw)
        problem = json_problem(payload)
        if problem is not None:
            payload = None
            reason += f" (payload not kept: it {problem})"
        else:
            try:
                if len(canonical_json(payload).encode()) > self.max_payload_bytes:
                    payload = None
                    reason += (
                        f" (payload not kept: over {self.max_payload_bytes} bytes)"
                    )
            except (TypeError, ValueError):
                payload = None
        job_type = raw.get("type")
        job = creation.rejected(
            creation.derived_id(owner, f"rejected:{_text(message_id)}"),
            owner,
            _text(job_type)
            if isinstance(job_type, str) and 0 < len(job_type) <= 128
            else "unknown",
            payload,
            JobError(type=error_type, message=_text(reason[:MAX_REASON_CHARS])),
            now,
            self.retention,
        ).model_copy(update={"correlation_id": correlation_id})
        try:
            self.repository.create(job, now)
        except ConditionFailed as lost:
            if lost.current is not None:
                log.info("job.rejection_replayed", job_id=job.id)
                return Submitted(job=lost.current, created=False)
            raise
        log.warning(
            "job.rejected",
            job_id=job.id,
            job_type=job.type,
            error_type=error_type,
            reason=reason,
            **metrics.emf(job.type, counts=["JobsRejected"]),
        )
        return Submitted(job=job, created=True)
