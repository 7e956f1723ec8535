"""`echo`'s handler: returns its payload as the result."""

from __future__ import annotations

from typing import Any

from jobline.registry import JobContext

from jobline_examples.inputs import EchoInput


def run_echo(payload: EchoInput, context: JobContext) -> dict[str, Any]:
    """Return the payload unchanged."""
    return payload.root
