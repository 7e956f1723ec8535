"""List cursors: opaque, signed, bound to the owner and the filter."""

from __future__ import annotations

import base64
import json

import pytest
from jobline.cursor import CursorCodec
from jobline.errors import InvalidCursor
from jobline.models import JobFilter, JobStatus
from jobline.ports import StartKey

KEY: StartKey = {
    "id": "0123456789abcdef0123456789abcdef",
    "sk": "2025-01-15T12:00:00.000000Z#0123456789abcdef0123456789abcdef",
    "owner": "ann",
}
ALL = JobFilter()


@pytest.fixture
def codec() -> CursorCodec:
    return CursorCodec(b"cursor-test-secret")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip(codec: CursorCodec) -> None:
    # Given a cursor for ann's queued echo jobs
    job_filter = JobFilter(status=JobStatus.QUEUED, type="echo")
    cursor = codec.encode(KEY, "ann", job_filter)

    # Then it is URL-safe text that decodes to the same key for the same query
    assert cursor.count(".") == 1
    assert all(c.isalnum() or c in "-_." for c in cursor)
    assert codec.decode(cursor, "ann", job_filter) == KEY


def test_a_modified_body_is_rejected(codec: CursorCodec) -> None:
    # Given a valid cursor whose body is swapped for another key, keeping the signature
    cursor = codec.encode(KEY, "ann", ALL)
    _, mac = cursor.split(".")
    forged_body = _b64(
        json.dumps({**KEY, "sk": "9999"}, separators=(",", ":")).encode()
    )

    # Then it is refused
    with pytest.raises(InvalidCursor):
        codec.decode(f"{forged_body}.{mac}", "ann", ALL)


@pytest.mark.parametrize("position", [0, 5, -1])
def test_one_changed_character_is_rejected(codec: CursorCodec, position: int) -> None:
    cursor = codec.encode(KEY, "ann", ALL)
    chars = list(cursor)
    chars[position] = "A" if chars[position] != "A" else "B"

    with pytest.raises(InvalidCursor):
        codec.decode("".join(chars), "ann", ALL)


def test_a_modified_signature_is_rejected(codec: CursorCodec) -> None:
    cursor = codec.encode(KEY, "ann", ALL)
    body, mac = cursor.split(".")

    for forged in (mac[:-1], mac + "A", _b64(b"\x00" * 32), ""):
        with pytest.raises(InvalidCursor):
            codec.decode(f"{body}.{forged}", "ann", ALL)


@pytest.mark.parametrize(
    ("owner", "job_filter"),
    [
        ("bob", ALL),
        ("ann", JobFilter(status=JobStatus.QUEUED)),
        ("ann", JobFilter(type="echo")),
        ("ann", JobFilter(status=JobStatus.QUEUED, type="echo")),
    ],
)
def test_a_cursor_of_another_owner_or_filter_is_rejected(
    codec: CursorCodec, owner: str, job_filter: JobFilter
) -> None:
    cursor = codec.encode(KEY, "ann", ALL)
    with pytest.raises(InvalidCursor):
        codec.decode(cursor, owner, job_filter)


def test_a_cursor_signed_with_another_secret_is_rejected(codec: CursorCodec) -> None:
    cursor = CursorCodec(b"another-secret").encode(KEY, "ann", ALL)
    with pytest.raises(InvalidCursor):
        codec.decode(cursor, "ann", ALL)


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "nodot", "a.b.c", "!!!.###", "é.é", "eyJ9.", ".abc", "\x00.\x00"],
)
def test_garbage_is_rejected(codec: CursorCodec, garbage: str) -> None:
    with pytest.raises(InvalidCursor):
        codec.decode(garbage, "ann", ALL)


def test_a_signed_body_that_is_not_a_key_is_rejected(codec: CursorCodec) -> None:
    # Given cursors correctly signed around values that are not string-to-string keys
    not_keys: list[object] = [{"id": 1}, {"id": None}, {"id": {"S": "x"}}]
    for value in not_keys:
        cursor = codec.encode(value, "ann", ALL)  # type: ignore[arg-type]

        # Then they are refused all the same
        with pytest.raises(InvalidCursor):
            codec.decode(cursor, "ann", ALL)


def test_a_too_long_cursor_is_rejected_even_if_signed(codec: CursorCodec) -> None:
    # Given a correctly signed cursor longer than 2048 characters
    cursor = codec.encode({**KEY, "sk": "x" * 2000}, "ann", ALL)
    assert len(cursor) > 2048

    with pytest.raises(InvalidCursor):
        codec.decode(cursor, "ann", ALL)
    with pytest.raises(InvalidCursor):
        codec.decode("A" * 5000 + "." + "B" * 43, "ann", ALL)
