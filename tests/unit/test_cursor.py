"""List cursors: opaque, signed, bound to the owner and the filter."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jobline.cursor import CursorCodec, CursorKeys
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


# ------------------------------------------------------------------------- properties

_keys = st.binary(min_size=32, max_size=64)
_owners = st.text(min_size=1, max_size=40)
_filters = st.builds(
    JobFilter,
    status=st.none() | st.sampled_from(list(JobStatus)),
    type=st.none() | st.text(min_size=1, max_size=20),
)
_start_keys = st.dictionaries(
    st.sampled_from(["id", "sk", "owner", "owner_status", "owner_type"]),
    st.text(max_size=60),
    min_size=1,
)


@given(_keys, _start_keys, _owners, _filters)
def test_any_key_round_trips_for_its_own_query(
    secret: bytes, key: StartKey, owner: str, job_filter: JobFilter
) -> None:
    codec = CursorCodec(secret)
    assert codec.decode(codec.encode(key, owner, job_filter), owner, job_filter) == key


@given(_keys, _start_keys, _owners, _filters, _owners, _filters)
def test_a_cursor_reads_for_no_other_owner_or_filter(
    secret: bytes,
    key: StartKey,
    owner: str,
    job_filter: JobFilter,
    other_owner: str,
    other_filter: JobFilter,
) -> None:
    codec = CursorCodec(secret)
    cursor = codec.encode(key, owner, job_filter)
    if (other_owner, other_filter) != (owner, job_filter):
        with pytest.raises(InvalidCursor):
            codec.decode(cursor, other_owner, other_filter)


@given(_keys, _keys, _keys, _start_keys, _owners)
def test_a_rotation_reads_old_cursors_signs_new_ones_and_forgets_unknown_keys(
    old: bytes, new: bytes, stranger: bytes, key: StartKey, owner: str
) -> None:
    rotated = CursorCodec(CursorKeys(new, (old,)))
    # cursors of the previous key still read, new ones are signed with the current key only
    assert rotated.decode(CursorCodec(old).encode(key, owner, ALL), owner, ALL) == key
    fresh = rotated.encode(key, owner, ALL)
    assert CursorCodec(new).decode(fresh, owner, ALL) == key
    if stranger not in (old, new):
        with pytest.raises(InvalidCursor):
            rotated.decode(CursorCodec(stranger).encode(key, owner, ALL), owner, ALL)
        if old != new:
            with pytest.raises(InvalidCursor):
                CursorCodec(old).decode(fresh, owner, ALL)


@given(_keys, _start_keys, _owners, st.data())
def test_any_changed_character_is_rejected(
    secret: bytes, key: StartKey, owner: str, data: st.DataObject
) -> None:
    codec = CursorCodec(secret)
    cursor = codec.encode(key, owner, ALL)
    position = data.draw(st.integers(min_value=0, max_value=len(cursor) - 1))
    replacement = data.draw(
        st.sampled_from("ABCabc012-_.").filter(lambda c: c != cursor[position])
    )
    changed = cursor[:position] + replacement + cursor[position + 1 :]
    try:
        decoded = codec.decode(changed, owner, ALL)
    except InvalidCursor:
        return
    # base64 padding bits: a change that decodes to the same bytes carries the same key
    assert decoded == key
