"""The largest legal job: every field Jobline bounds at its bound, all at once, in each way text
grows when it is stored or served (as is, escaped in JSON, two- and four-byte UTF-8).

Used to prove that a job's item stays under DynamoDB's 400 KB (tests/unit/test_item_size.py, and
on moto) and that every answer of the API stays under Lambda's 6 MB
(tests/unit/api/test_response_sizes.py)."""

from __future__ import annotations

import json
from typing import Any

from jobline.limits import (
    INLINE_DATA_BYTES,
    MAX_ATTEMPT_ERROR_TEXT_BYTES,
    MAX_CHECKPOINT_BYTES,
    MAX_CONTROL_TOKENS,
    MAX_ERROR_TEXT_BYTES,
    MAX_HISTORY,
)
from jobline.models import Attempt, Checkpoint, Job, JobError, JobStatus, Progress
from jobline.validation import MAX_IDENTITY_CHARS, canonical_json

from tests.support.fakes import START

CHARACTERS = {
    "ascii": "a",
    "quote": '"',
    "control": "\x01",
    "latin": "é",
    "astral": "\U0001f600",
}
"""One character per way JSON text grows: as is, escaped (`\\"`, `\\u0001`), two and four bytes
of UTF-8 (six and twelve bytes under `ensure_ascii`)."""
PROGRESS_MESSAGE_CHARS = 1024
"""`Progress.message`'s bound."""
TYPE_CHARS = 128
"""`SubmitRequest.type`'s bound."""
CORRELATION_CHARS = 256
"""The longest correlation id a job may carry (an ingest message's, `JobMessage`)."""
REQUEST_ID = "r" * 36
"""A Lambda request id."""


def text_of(character: str, canonical_bytes: int) -> str:
    """A string of `character` (padded with ASCII) whose canonical JSON takes exactly
    `canonical_bytes` bytes, quotes included."""
    each = len(json.dumps(character, ensure_ascii=False).encode()) - 2
    count, pad = divmod(canonical_bytes - 2, each)
    text = character * count + "a" * pad
    assert len(canonical_json(text).encode()) == canonical_bytes
    return text


def value_at(character: str, canonical_bytes: int) -> dict[str, str]:
    """`{"data": ...}` whose canonical JSON takes exactly `canonical_bytes` bytes: a payload or a
    result at a limit."""
    value = {"data": text_of(character, canonical_bytes - len('{"data":}'))}
    assert len(canonical_json(value).encode()) == canonical_bytes
    return value


def text_at(character: str, max_bytes: int) -> str:
    """The longest run of `character` whose UTF-8 fits in `max_bytes` (an error text at its
    bound, kept whole)."""
    return character * (max_bytes // len(character.encode()))


def error_at(character: str, max_bytes: int) -> JobError:
    """An error whose type and message are at the bound a store of `max_bytes` keeps."""
    return JobError(
        type=text_at(character, max_bytes // 10),
        message=text_at(character, max_bytes),
    )


def largest(job: Job, character: str, status: JobStatus) -> Job:
    """`job` (its id, owner and type kept) in `status` with everything else as large as a job may
    hold: payload and result at `limits.INLINE_DATA_BYTES` (larger ones are in the data bucket),
    an error and `MAX_HISTORY` attempts (one fewer when failed: the most a job may hold and still
    be retried) whose texts are at their bounds, a progress message at its bound, a checkpoint's
    state at its bound, a full set of control tokens and every timestamp and lease field set."""
    attempts = MAX_HISTORY - 1 if status is JobStatus.FAILED else MAX_HISTORY
    history = tuple(
        Attempt(
            attempt=n + 1,
            run=1,
            started_at=START,
            finished_at=START,
            error=error_at(character, MAX_ATTEMPT_ERROR_TEXT_BYTES),
            request_id=REQUEST_ID,
            duration_ms=899_999,
            token="t" * 32,
        )
        for n in range(attempts)
    )
    running = status is JobStatus.RUNNING
    return job.model_copy(
        update={
            "status": status,
            "payload": value_at(character, INLINE_DATA_BYTES),
            "payload_ref": None,
            "result": value_at(character, INLINE_DATA_BYTES),
            "result_ref": None,
            "error": error_at(character, MAX_ERROR_TEXT_BYTES),
            "history": history,
            "attempts": attempts,
            "max_attempts": MAX_HISTORY,
            "progress": Progress(
                percent=50.125,
                message=character * PROGRESS_MESSAGE_CHARS,
                updated_at=START,
                seq=2**31,
            ),
            "checkpoint": Checkpoint(
                state=value_at(character, MAX_CHECKPOINT_BYTES),
                seq=2**31,
                saved_at=START,
            ),
            "correlation_id": character * CORRELATION_CHARS,
            "started_at": START,
            "finished_at": None if running else START,
            "run_after": START,
            "cancel_requested_at": START,
            "lease_until": START,
            "attempt_request_id": REQUEST_ID,
            "lease_id": "l" * 32,
            "control_tokens": tuple(f"{n:032x}" for n in range(MAX_CONTROL_TOKENS)),
            "request_hash": job.request_hash or "0" * 64,
            "expires_at": 2**40,
            "dispatch": 2**45,
            "delay_seconds": 900,
        }
    )


def largest_owner(character: str) -> str:
    """The longest identity of `character` an owner may be."""
    return character * MAX_IDENTITY_CHARS if character.isprintable() else "o" * 256


def largest_fields(character: str) -> dict[str, Any]:
    """Id, owner and type at their bounds (the item's keys repeat the owner)."""
    return {
        "id": "f" * 32,
        "owner": largest_owner(character),
        "type": character * TYPE_CHARS,
    }
