"""What the `jobline` command shows: the API's JSON as it came, or plain aligned text for people."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jobline_client.models import DataLink, Job, JobSummary, JobTypeInfo

BAR_WIDTH = 20
CLEAR_TO_END = "\x1b[K"


def json_text(value: Any) -> str:
    """The API's JSON, one line (`jq`-friendly)."""
    return json.dumps(value, ensure_ascii=False)


def _time(value: datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        return value.isoformat(sep=" ", timespec="seconds")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _percent(job: Job | JobSummary) -> str:
    if job.progress is None:
        return "-"
    return f"{job.progress.percent:.0f}%"


def _columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns two spaces apart, without trailing blanks."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


LABEL_WIDTH = len("cancel_requested_at") + 2
PREVIEW_CHARS = 200
"""A table shows this much of a payload or result the job kept in the data bucket (over 64 KiB)."""


def _data(value: Any, link: DataLink | None) -> str:
    """A payload or a result as a table shows it: whole, or, when it was large enough for the
    data bucket, its start and its size (`--output json` prints it whole)."""
    text = _compact(value)
    if link is None or len(text) <= PREVIEW_CHARS:
        return text
    return (
        f"{text[:PREVIEW_CHARS]}... ({link.size} bytes, sha256 {link.sha256[:16]}; "
        "--output json prints it whole)"
    )


def job_table(job: Job) -> str:
    """One job as `field  value` lines (values in one column), its result or error included."""
    rows: list[tuple[str, str]] = [
        ("id", job.id),
        ("type", job.type),
        ("status", job.status.value),
        ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("created_at", _time(job.created_at)),
        ("updated_at", _time(job.updated_at)),
        ("started_at", _time(job.started_at)),
        ("finished_at", _time(job.finished_at)),
    ]
    if job.run_after is not None:
        rows.append(("run_after", _time(job.run_after)))
    if job.cancel_requested_at is not None:
        rows.append(("cancel_requested_at", _time(job.cancel_requested_at)))
    if job.progress is not None:
        message = f" {job.progress.message}" if job.progress.message else ""
        rows.append(("progress", f"{_percent(job)}{message}"))
    rows.append(("payload", _data(job.payload, job.payload_link)))
    if job.error is not None:
        rows.append(("error", f"{job.error.type}: {job.error.message}"))
    else:
        rows.append(("result", _data(job.result, job.result_link)))
    for index, attempt in enumerate(job.history):
        outcome = (
            "ok"
            if attempt.error is None
            else f"{attempt.error.type}: {attempt.error.message}"
        )
        duration = "-" if attempt.duration_ms is None else f"{attempt.duration_ms} ms"
        rows.append(
            (
                "history" if index == 0 else "",
                f"#{attempt.attempt} {_time(attempt.started_at)}  {duration}  {outcome}",
            )
        )
    return "\n".join(f"{label:<{LABEL_WIDTH}}{value}".rstrip() for label, value in rows)


def jobs_table(jobs: Iterable[JobSummary]) -> str:
    """Jobs (a listing's summaries), one per line under a header."""
    rows = [("ID", "TYPE", "STATUS", "ATTEMPTS", "PROGRESS", "CREATED", "UPDATED")]
    rows.extend(
        (
            job.id,
            job.type,
            job.status.value,
            f"{job.attempts}/{job.max_attempts}",
            _percent(job),
            _time(job.created_at),
            _time(job.updated_at),
        )
        for job in jobs
    )
    if len(rows) == 1:
        return "no jobs"
    return _columns(rows)


def types_table(job_types: Iterable[JobTypeInfo]) -> str:
    """Job types with their description and payload fields."""
    rows = [("NAME", "FIELDS", "DESCRIPTION")]
    rows.extend(
        (info.name, _fields(info.input_schema), info.description) for info in job_types
    )
    return _columns(rows)


def _fields(schema: Mapping[str, Any]) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return "(any object)" if schema.get("type") == "object" else "-"
    required = schema.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    return ",".join(
        f"{name}{'' if name in required_names else '?'}" for name in properties
    )


def progress_line(job: Job, *, bar: bool) -> str:
    """`[####......]  40%  message  attempt 1/3  running` (without the bar: one log line)."""
    percent = job.progress.percent if job.progress is not None else 0.0
    parts: list[str] = []
    if bar:
        filled = round(BAR_WIDTH * max(0.0, min(percent, 100.0)) / 100)
        parts.append("[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]")
    parts.append(f"{_percent(job):>4}")
    if job.progress is not None and job.progress.message:
        parts.append(job.progress.message)
    parts.append(f"attempt {job.attempts}/{job.max_attempts}")
    parts.append(job.status.value)
    return "  ".join(parts)
