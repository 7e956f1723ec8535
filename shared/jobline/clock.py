"""Time helpers: every timestamp Jobline stores is UTC with microseconds, so it sorts as text."""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def format_ts(value: datetime) -> str:
    """Render a datetime as fixed-width ISO 8601 UTC text (lexicographic order is time order)."""
    return value.astimezone(UTC).strftime(_FORMAT)


def parse_ts(text: str) -> datetime:
    """Parse text written by `format_ts`."""
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)
