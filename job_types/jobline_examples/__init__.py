"""Jobline's example job types, `echo`, `sleep`, `steps` and `http.request`: a job-type package like any
team's, discovered through the `jobline.job_types` entry point `job_types/pyproject.toml`
declares (docs/job-types.md).

This module is what every function imports: names, descriptions and input models. Each handler is
an import path, imported on first use by the worker only, so the API never loads `urllib` for
`http.request`, nor anything a heavier handler would need.
"""

from __future__ import annotations

from typing import Any

from jobline.limits import DEFAULT_TIMEOUT_S
from jobline.registry import JobType

from jobline_examples.inputs import EchoInput, HttpRequestInput, SleepInput, StepsInput
from jobline_examples.limits import (
    MAX_SLEEP_S,
    MAX_STEP_S,
    MAX_TIMEOUT_S,
    STEPS_MAX_RUNTIME_S,
)

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
    # Up to 600 s: more than the worker's 120 s, so its attempts run on the long lane (15 min).
    timeout_s=MAX_SLEEP_S + 10,
)
STEPS = JobType(
    name="steps",
    description=f"Counts `steps` steps of `step_seconds` (0..{MAX_STEP_S}) each, saving its "
    "place after every step and going on in a new invocation before the current one's time "
    "runs out: a job longer than one invocation, which a dead worker does not restart from "
    "the beginning.",
    input_model=StepsInput,
    handler="jobline_examples.steps:run_steps",
    timeout_s=DEFAULT_TIMEOUT_S,
    max_runtime_s=STEPS_MAX_RUNTIME_S,
)
HTTP_REQUEST = JobType(
    name="http.request",
    description="Makes one HTTP request; the result is {status, headers, body} "
    "(body cut at 64 KiB). Public addresses only unless allow-listed; redirects "
    "are not followed.",
    input_model=HttpRequestInput,
    handler="jobline_examples.http_request:run",
    # Up to a 600 s request: the long lane.
    timeout_s=MAX_TIMEOUT_S + 10,
)

JOB_TYPES: tuple[JobType[Any], ...] = (ECHO, SLEEP, STEPS, HTTP_REQUEST)
