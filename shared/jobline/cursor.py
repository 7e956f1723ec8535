"""Opaque, tamper-evident list cursors: base64url(JSON) + HMAC-SHA256, bound to owner and filter.

Signed with the current key; verified with the current key or, during a rotation's grace period,
the previous one (`CursorKeys`). Where the keys come from is the composition root's business
(`jobline.bootstrap.cursor_keys`: SSM Parameter Store in AWS); this module only says which keys
are too weak to deploy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass

from jobline.errors import InvalidCursor
from jobline.models import JobFilter
from jobline.ports import StartKey

_MAX_CURSOR_CHARS = 2048
DEVELOPMENT_KEY = b"jobline-local-cursor-key-change-me"
"""The key of local runs and tests when none is configured: public, refused on Lambda."""
MIN_KEY_BYTES = 32


def weak_key_problem(key: bytes) -> str | None:
    """Why `key` must not sign cursors of a deployment, or None."""
    if key == DEVELOPMENT_KEY:
        return "is the public development key"
    if len(key) < MIN_KEY_BYTES:
        return f"is {len(key)} bytes long; at least {MIN_KEY_BYTES} are needed"
    return None


@dataclass(frozen=True)
class CursorKeys:
    """The key that signs cursors, and the keys still accepted when reading one (a rotation's
    previous key, until its grace period ends)."""

    current: bytes
    previous: tuple[bytes, ...] = ()


class CursorCodec:
    """Signs resume keys into cursors and checks them on the way back.

    `keys` may be a loader, called once, on first use: a service that never lists (the worker)
    never loads them."""

    def __init__(self, keys: bytes | CursorKeys | Callable[[], CursorKeys]) -> None:
        self._loader: Callable[[], CursorKeys] | None = None
        self._keys: CursorKeys | None = None
        if isinstance(keys, bytes):
            self._keys = CursorKeys(keys)
        elif isinstance(keys, CursorKeys):
            self._keys = keys
        else:
            self._loader = keys

    @property
    def keys(self) -> CursorKeys:
        """The keys in use (loaded on first use)."""
        if self._keys is None:
            assert self._loader is not None
            self._keys = self._loader()
        return self._keys

    def _scope(self, owner: str, job_filter: JobFilter) -> str:
        return json.dumps([owner, job_filter.status, job_filter.type])

    @staticmethod
    def _mac(key: bytes, body: bytes, scope: str) -> str:
        digest = hmac.new(key, body + b"\x00" + scope.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def encode(self, key: StartKey, owner: str, job_filter: JobFilter) -> str:
        """A cursor for `key`, valid only for this owner and filter."""
        body = base64.urlsafe_b64encode(
            json.dumps(key, separators=(",", ":")).encode()
        ).rstrip(b"=")
        mac = self._mac(self.keys.current, body, self._scope(owner, job_filter))
        return f"{body.decode()}.{mac}"

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
        scope = self._scope(owner, job_filter)
        keys = self.keys
        if not any(
            hmac.compare_digest(mac, self._mac(key, body, scope))
            for key in (keys.current, *keys.previous)
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
