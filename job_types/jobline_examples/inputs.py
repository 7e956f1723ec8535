"""The example types' input models: all the API needs of them (their JSON Schemas are published by
`GET /job-types`, and submissions are validated against them, strictly)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from jobline_examples.limits import (
    MAX_SLEEP_S,
    MAX_STEP_S,
    MAX_STEPS,
    MAX_TIMEOUT_S,
    URL_PATTERN,
)


class EchoInput(RootModel[dict[str, Any]]):
    """Any JSON object."""


class StepsInput(BaseModel):
    """How many steps to count, and how long each takes."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(
        ge=1, le=MAX_STEPS, description=f"steps to count, 1..{MAX_STEPS}"
    )
    step_seconds: float = Field(
        default=1.0,
        ge=0,
        le=MAX_STEP_S,
        allow_inf_nan=False,
        description=f"seconds each step takes, 0..{MAX_STEP_S}",
    )


class SleepInput(BaseModel):
    """How long to sleep."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(
        ge=0,
        le=MAX_SLEEP_S,
        allow_inf_nan=False,
        description=f"seconds to sleep, 0..{MAX_SLEEP_S}",
    )


class HttpRequestInput(BaseModel):
    """The request to make."""

    # python-re: the pattern is checked by the same engine as a JSON Schema validator's.
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

    url: str = Field(
        pattern=URL_PATTERN,
        max_length=8192,
        description="an http or https URL (any case), its host ASCII (punycode), its "
        "path, query and fragment printable ASCII (percent-encode the rest)",
    )
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)
