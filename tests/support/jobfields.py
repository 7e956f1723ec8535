"""The names of a job's fields, written once for every test (not read from the code under test,
so a field the API gains or loses by accident fails a test)."""

from __future__ import annotations

TIMESTAMPS = (
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "run_after",
    "cancel_requested_at",
)
"""The public timestamps of a job (ISO 8601 UTC in the API)."""
STORED_TIMESTAMPS = (*TIMESTAMPS, "lease_until")
"""Every timestamp a stored job carries; `lease_until` is internal."""
DATA_LINK_FIELDS = tuple(
    f"{name}_{part}"
    for name in ("payload", "result")
    for part in ("url", "url_expires_at", "size", "sha256")
)
"""Where a job's payload and result kept in the data bucket are (null for data the job holds)."""
NO_DATA_LINKS = dict.fromkeys(DATA_LINK_FIELDS)
"""The link fields of a job that holds its payload and result."""
PUBLIC_FIELDS = (
    "id",
    "type",
    "status",
    "payload",
    *DATA_LINK_FIELDS[:4],
    "result",
    *DATA_LINK_FIELDS[4:],
    "error",
    "run",
    "attempts",
    "max_attempts",
    *TIMESTAMPS,
    "progress",
    "history",
    "correlation_id",
)
"""What the API shows of a job."""
SUMMARY_FIELDS = (
    *(
        name
        for name in PUBLIC_FIELDS
        if name not in ("payload", "result", "history", *DATA_LINK_FIELDS)
    ),
    "error_truncated",
)
"""What a listing shows of a job: the job but its payload, result (and their links) and history."""
TIMELESS_FIELDS = tuple(
    name
    for name in PUBLIC_FIELDS
    if name
    not in (
        "id",
        "created_at",
        "updated_at",
        "run_after",
        "cancel_requested_at",
        "correlation_id",
        "payload_url",
        "payload_url_expires_at",
        "result_url",
        "result_url_expires_at",
    )
)
"""What a job shows that does not depend on when or by whom it was made."""
FINAL_STATUSES = frozenset(
    {"succeeded", "failed", "cancelled", "dead_lettered", "rejected"}
)
"""The states a job does not leave on its own (only a retry or redrive moves it again)."""
