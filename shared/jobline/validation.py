"""Checks on decoded input (a request, an ingest submission, a handler's result) before anything
serializes or stores it: what JSON text can hold, and what an identity may be. Pure."""

from __future__ import annotations

import json
from typing import Any

MAX_PAYLOAD_DEPTH = 64
"""How deeply a payload's arrays and objects may nest (serializers give up past a few hundred)."""
MAX_RESULT_DEPTH = 128
"""How deeply a handler's result may nest: room for a payload echoed inside a wrapper or two, far
below the ~255 levels at which the API's response serializer gives up."""
MAX_IDENTITY_CHARS = 256


def _is_unicode(text: str) -> bool:
    """False for a string Python holds but UTF-8 cannot encode: a lone surrogate (JSON's
    `"\\ud800"` decodes to one)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def json_problem(value: Any, max_depth: int = MAX_PAYLOAD_DEPTH) -> str | None:
    """Why decoded JSON `value` could not be stored and served back as JSON text: nested deeper
    than `max_depth`, or a string or key that is not valid Unicode. None when it can be.

    Checked when a request or an ingest submission is validated, before anything serializes it.
    """
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                return "contains a string that is not valid Unicode (a lone surrogate)"
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                return f"nests arrays and objects deeper than {max_depth} levels"
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
    return None


def identity_problem(identity: str) -> str | None:
    """Why `identity` cannot be a job owner, or None. An identity is used exactly as given (never
    trimmed or cut): 1 to 256 characters of valid Unicode, no control characters, no leading or
    trailing whitespace."""
    if not identity:
        return "is empty"
    if len(identity) > MAX_IDENTITY_CHARS:
        return f"is longer than {MAX_IDENTITY_CHARS} characters"
    if not _is_unicode(identity):
        return "is not valid Unicode"
    if identity != identity.strip():
        return "has leading or trailing whitespace"
    if any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in identity):
        return "contains a control character"
    return None


CUT_MARK = "\u2026"
"""Ends a text `cut_text` shortened."""


def cut_text(text: str, max_bytes: int) -> str:
    """`text` if its UTF-8 takes at most `max_bytes`, else its longest start that fits with
    `CUT_MARK` after it (never half a character)."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= max_bytes:
        return text
    room = max(0, max_bytes - len(CUT_MARK.encode()))
    return encoded[:room].decode("utf-8", "ignore") + CUT_MARK


def canonical_json(value: Any) -> str:
    """JSON text with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
        ensure_ascii=False,
    )
