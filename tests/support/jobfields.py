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
PUBLIC_FIELDS = (
    "id",
    "type",
    "status",
    "payload",
    "result",
    "error",
    "run",
    "attempts",
    "max_attempts",
    *TIMESTAMPS,
    "progress",
    "history",
    "correlation_id",
    "concurrency_key",
    "priority",
    "priority_s",
    "blocked_on",
)
"""What the API shows of a job."""
SUMMARY_FIELDS = (
    *(
        name
        for name in PUBLIC_FIELDS
        if name
        not in (
            "payload",
            "result",
            "history",
            "concurrency_key",
            "priority",
            "priority_s",
        )
    ),
    "error_truncated",
)
"""What a listing shows of a job: the job but its payload, result and history."""
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
    )
)
"""What a job shows that does not depend on when or by whom it was made."""
FINAL_STATUSES = frozenset(
    {"succeeded", "failed", "cancelled", "dead_lettered", "rejected"}
)
"""The states a job does not leave on its own (only a retry or redrive moves it again)."""
