"""Built-in job types. To add one: write a module with an input model, a handler and a
`JOB_TYPE = JobType(...)`, then list it in `BUILTIN_JOB_TYPES` below."""

from __future__ import annotations

from typing import Any

from jobline.job_types import echo, http_request, sleep
from jobline.registry import JobType

BUILTIN_JOB_TYPES: tuple[JobType[Any], ...] = (
    echo.JOB_TYPE,
    sleep.JOB_TYPE,
    http_request.JOB_TYPE,
)
