"""What a job keeps in DynamoDB stays under the 400 KB an item may hold, whatever it carries: the
largest legal job (every bounded field at its bound at once, `tests.support.largest`) as
`jobline.aws.items` stores it, measured by DynamoDB's documented size rules (`bench.cost.item_size`:
attribute names plus values; numbers by digits; maps and lists 3 bytes plus 1 per element).

What makes it so: payloads and results over `INLINE_DATA_BYTES` live in the data bucket (the item
keeps a reference), and error texts are cut to their bounds (`JobError`, `Attempt`) however long a
handler's exception is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jobline.aws.items import item_to_job, job_to_item
from jobline.limits import (
    DYNAMODB_MAX_ITEM_BYTES,
    INLINE_DATA_BYTES,
    MAX_ATTEMPT_ERROR_TEXT_BYTES,
    MAX_ERROR_TEXT_BYTES,
    MAX_HISTORY,
)
from jobline.models import Attempt, DataRef, Job, JobError, JobStatus
from jobline.validation import CUT_MARK

from bench.cost import item_size
from tests.support.builders import echo_request
from tests.support.fakes import START
from tests.support.largest import CHARACTERS, largest, largest_fields

ROOM_TO_SPARE = 32 * 1024
"""What the largest job (its checkpoint's state at its bound included) leaves free in its item
at least."""


def a_job(character: str) -> Job:
    return Job(
        **largest_fields(character),
        status=JobStatus.QUEUED,
        payload=echo_request().payload,
        created_at=START,
        updated_at=START,
    )


@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize("character", sorted(CHARACTERS))
def test_the_largest_legal_job_fits_in_one_item(
    character: str, status: JobStatus
) -> None:
    # Given a job with everything at its bound, in any status
    job = largest(a_job(CHARACTERS[character]), CHARACTERS[character], status)
    assert len(job.history) >= MAX_HISTORY - 1 and job.control_tokens

    # When it is stored as the repository stores it
    size = item_size(job_to_item(job))

    # Then the item is under DynamoDB's limit, with room to spare
    assert size <= DYNAMODB_MAX_ITEM_BYTES - ROOM_TO_SPARE, size


def test_data_over_the_inline_bound_is_a_reference_in_the_item() -> None:
    # Given the largest job, its payload and result in the data bucket instead
    job = largest(a_job("a"), "a", JobStatus.SUCCEEDED)
    key = f"payloads/{job.id}/{'0' * 64}.json"
    ref = DataRef(key=key, size=5 << 20, sha256="0" * 64)
    kept = job.model_copy(
        update={"payload": None, "payload_ref": ref, "result": None, "result_ref": ref}
    )

    # Then the item holds references of a few hundred bytes, not the data
    item = job_to_item(kept)
    assert item["payload_ref"]["M"]["size"] == {"N": str(5 << 20)}
    assert item_size(item) < item_size(job_to_item(job)) - 2 * INLINE_DATA_BYTES + 1024


@pytest.mark.parametrize("name", sorted(CHARACTERS))
def test_error_texts_are_cut_to_their_bounds_whatever_a_handler_raised(
    name: str,
) -> None:
    # Given an exception text of 1 MB and a history entry that carries it
    character = CHARACTERS[name]
    huge = character * (1 << 20)
    error = JobError(type=huge, message=huge)
    entry = Attempt(attempt=1, started_at=START, error=JobError(type="E", message=huge))

    # Then the job's error keeps its bound, the entry's a smaller one, each marked as cut and
    # never cut inside a character
    assert len(error.message.encode()) <= MAX_ERROR_TEXT_BYTES
    assert len(error.type.encode()) <= MAX_ERROR_TEXT_BYTES // 10
    assert error.message.endswith(CUT_MARK) and error.message.startswith(character)
    assert entry.error is not None
    assert len(entry.error.message.encode()) <= MAX_ATTEMPT_ERROR_TEXT_BYTES
    assert entry.error.message.endswith(CUT_MARK)
    assert set(error.message[:-1]) == {character}
    # And a text within its bound is kept whole
    assert JobError(type="E", message="short").message == "short"


def test_a_stored_item_keeps_the_largest_job_as_it_was() -> None:
    job = largest(a_job("é"), "é", JobStatus.FAILED)
    assert item_to_job(job_to_item(job)) == job
    assert job.finished_at is not None and job.finished_at - START == timedelta(0)
