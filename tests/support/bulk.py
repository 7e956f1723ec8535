"""`bulk`, a job type of the tests that moves large data both ways: it takes a `blob` (a large
payload) and returns its SHA-256 with `result_bytes` of data (a large result). A module with
`JOB_TYPES`, so a stack loads it as any deployment would (`JOBLINE_JOB_TYPE_MODULES`)."""

from __future__ import annotations

import hashlib
from typing import Any

from jobline.registry import JobContext, JobType
from pydantic import BaseModel, ConfigDict, Field

MAX_RESULT_BYTES = 60 * 1024 * 1024


class BulkInput(BaseModel):
    """What `bulk` is asked for."""

    model_config = ConfigDict(extra="forbid")

    blob: str = ""
    result_bytes: int = Field(default=0, ge=0, le=MAX_RESULT_BYTES)


def run_bulk(payload: BulkInput, context: JobContext) -> dict[str, Any]:
    """The blob's digest and `result_bytes` of data, in one JSON object of about that size."""
    return {
        "blob_sha256": hashlib.sha256(payload.blob.encode()).hexdigest(),
        "data": "r" * payload.result_bytes,
    }


BULK = JobType(
    name="bulk",
    description="Returns the SHA-256 of `blob` and `result_bytes` of data (tests).",
    input_model=BulkInput,
    handler="tests.support.bulk:run_bulk",
)
JOB_TYPES = [BULK]
