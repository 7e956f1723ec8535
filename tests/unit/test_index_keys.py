"""Index partition keys: no two (owner, filter) pairs share one, whatever the identity string."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from jobline.aws.items import key_part, status_key
from jobline.models import JobStatus

identities = st.text(min_size=1, max_size=40) | st.text(
    alphabet="#%23ab", min_size=1, max_size=12
)
"""Any identity string, and many made of the separator, the escape and its digits."""
statuses = st.sampled_from(list(JobStatus))


@given(identities, statuses, identities, statuses)
def test_status_keys_are_one_to_one(
    owner: str, status: JobStatus, other_owner: str, other_status: JobStatus
) -> None:
    if (owner, status) != (other_owner, other_status):
        assert status_key(owner, status) != status_key(other_owner, other_status)


@given(identities)
def test_an_escaped_part_never_holds_the_separator(value: str) -> None:
    assert "#" not in key_part(value)


def test_usual_identities_keep_the_keys_they_had() -> None:
    # Owners without `%` or `#` (all of them, before this escape) keep their stored partitions
    assert status_key("7c9e6679-7425-40de-944b-e07fc1f90ae7", JobStatus.FAILED) == (
        "7c9e6679-7425-40de-944b-e07fc1f90ae7#failed"
    )
    assert status_key("ann", JobStatus.QUEUED) == "ann#queued"


def test_the_separator_in_an_identity_is_escaped() -> None:
    assert status_key("alice#x", JobStatus.QUEUED) == "alice%23x#queued"
    assert status_key("a%23b", JobStatus.QUEUED) == "a%2523b#queued"
