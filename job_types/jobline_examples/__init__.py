"""Jobline's example job types, `echo`, `sleep` and `http.request`: a job-type package like any
team's, discovered through the `jobline.job_types` entry point `job_types/pyproject.toml`
declares (docs/job-types.md).

This module is what every function imports: names, descriptions and input models. Each handler is
an import path, imported on first use by the worker only, so the API never loads `urllib` for
`http.request`, nor anything a heavier handler would need.
"""

from __future__ import annotations

from typing import Any

from jobline.registry import JobType

from jobline_examples.inputs import EchoInput, HttpRequestInput, SleepInput
from jobline_examples.limits import MAX_SLEEP_S

ECHO = JobType(
    name="echo",
    description="Returns its payload (any JSON object) as the result.",
    input_model=EchoInput,
    handler="jobline_examples.echo:run_echo",
)
SLEEP = JobType(
    name="sleep",
    description=f"Sleeps for `seconds` (0..{MAX_SLEEP_S}), reporting progress and honouring "
    "cancellation every second, stopping before the Lambda deadline.",
    input_model=SleepInput,
    handler="jobline_examples.sleep:run_sleep",
)
HTTP_REQUEST = JobType(
    name="http.request",
    description="Makes one HTTP request; the result is {status, headers, body} "
    "(body cut at 64 KiB). Public addresses only unless allow-listed; redirects "
    "are not followed.",
    input_model=HttpRequestInput,
    handler="jobline_examples.http_request:run",
)

JOB_TYPES: tuple[JobType[Any], ...] = (ECHO, SLEEP, HTTP_REQUEST)
