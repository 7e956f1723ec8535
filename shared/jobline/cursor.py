"""Opaque, tamper-evident list cursors: base64url(JSON) + HMAC-SHA256, bound to owner and filter."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from jobline.errors import InvalidCursor
from jobline.models import JobFilter
from jobline.ports import StartKey

_MAX_CURSOR_CHARS = 2048


class CursorCodec:
    """Signs resume keys into cursors and checks them on the way back."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _scope(self, owner: str, job_filter: JobFilter) -> str:
        return json.dumps([owner, job_filter.status, job_filter.type])

    def _mac(self, body: bytes, scope: str) -> str:
        digest = hmac.new(
            self._secret, body + b"\x00" + scope.encode(), hashlib.sha256
        ).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def encode(self, key: StartKey, owner: str, job_filter: JobFilter) -> str:
        """A cursor for `key`, valid only for this owner and filter."""
        body = base64.urlsafe_b64encode(
            json.dumps(key, separators=(",", ":")).encode()
        ).rstrip(b"=")
        return f"{body.decode()}.{self._mac(body, self._scope(owner, job_filter))}"

    def decode(self, cursor: str, owner: str, job_filter: JobFilter) -> StartKey:
        """The key inside `cursor`; `InvalidCursor` if it was altered or made for another query."""
        if (
            len(cursor) > _MAX_CURSOR_CHARS
            or not cursor.isascii()
            or cursor.count(".") != 1
        ):
            raise InvalidCursor()
        body_text, mac = cursor.split(".")
        body = body_text.encode()
        if not hmac.compare_digest(
            mac, self._mac(body, self._scope(owner, job_filter))
        ):
            raise InvalidCursor()
        try:
            key = json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except (binascii.Error, ValueError) as exc:
            raise InvalidCursor() from exc
        if (
            not isinstance(key, dict)
            or not key
            or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in key.items()
            )
        ):
            raise InvalidCursor()
        return key
