"""What never reaches a log line or a stored error: credentials in URLs (userinfo, the query
string), the values of secret headers (`Authorization`, `Cookie`, `X-Api-Key`... and those a
deployment names in `JOBLINE_REDACT_HEADERS`), payloads and results.

`redact_url` and `Redaction.headers` are applied where a URL or headers are put into a message or
a stored result (`http.request`); `redact_log_event` is a structlog processor, the last line of
defence for every log line: it drops payload- and result-shaped fields and redacts URLs and secret
header names wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
NOT_LOGGED = "[not logged]"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-amz-security-token",
        "x-auth-token",
        "x-csrf-token",
    }
)
"""Header names (lowercase) whose values are always redacted."""

UNLOGGED_FIELDS = frozenset(
    {"payload", "result", "body", "request_body", "response_body"}
)
"""Log fields that would carry a job's data: replaced, whatever their value."""

_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+""")


def redact_url(url: str) -> str:
    """`url` without its credentials: the userinfo (`user:password@`) and the fragment dropped,
    the query string replaced by `[redacted]`; scheme, host, port and path kept."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return REDACTED
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def redact_text(text: str) -> str:
    """`text` with every URL in it passed through `redact_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


@dataclass(frozen=True)
class Redaction:
    """The header names a deployment redacts: `SECRET_HEADERS` plus its own."""

    extra_headers: frozenset[str] = frozenset()

    @classmethod
    def of(cls, names: Iterable[str]) -> Redaction:
        """Redaction of `SECRET_HEADERS` and `names` (any case)."""
        return cls(frozenset(name.strip().lower() for name in names if name.strip()))

    def is_secret(self, header: str) -> bool:
        """Whether the value of `header` is never shown."""
        name = header.lower()
        return name in SECRET_HEADERS or name in self.extra_headers

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """`headers` with the values of secret ones replaced by `[redacted]`."""
        return {
            name: REDACTED if self.is_secret(name) else value
            for name, value in headers.items()
        }


_log_redaction = Redaction()


def use_for_logs(redaction: Redaction) -> None:
    """The header names `redact_log_event` treats as secret (the deployment's, set once)."""
    global _log_redaction
    _log_redaction = redaction


def _redact_value(key: str, value: Any) -> Any:
    if key in UNLOGGED_FIELDS:
        return NOT_LOGGED
    if _log_redaction.is_secret(key) or _log_redaction.is_secret(key.replace("_", "-")):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, BaseException):
        return redact_text(repr(value))
    if isinstance(value, Mapping):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", item) for item in value]
    return value


def redact_log_event(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> dict[str, Any]:
    """structlog processor: every field of a log line through the redaction rules."""
    return {key: _redact_value(key, value) for key, value in event_dict.items()}
