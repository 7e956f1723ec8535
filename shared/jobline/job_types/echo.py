"""`echo`: returns its payload as the result."""

from __future__ import annotations

from typing import Any

from pydantic import RootModel

from jobline.registry import JobContext, JobType


class EchoInput(RootModel[dict[str, Any]]):
    """Any JSON object."""


def run_echo(payload: EchoInput, context: JobContext) -> dict[str, Any]:
    """Return the payload unchanged."""
    return payload.root


JOB_TYPE = JobType(
    name="echo",
    description="Returns its payload (any JSON object) as the result.",
    input_model=EchoInput,
    handler=run_echo,
)
