"""Flow control's declarations and its arithmetic, pure (issue 18): what a job type declares
(`Concurrency`, `RateLimit`), what a submit asks for (`Priority`, `priority_s`, a concurrency key),
what a job stores (`FlowKey`: a declared limit's rendered key; `BlockedOn`: why a queued job
waits), how key templates render (`render_key`), how waiters are ordered (`waiter_rank`) and how a
rate limit's token bucket answers (`RateBucket`, GCRA: one timestamp per key). No I/O, no clock.

Every feature is off by default: a type that declares no limit has no `FlowKey`, and the worker
and the API then read and write nothing of flow control's for its jobs.

Other use cases declare extra concurrency on a job too (schedules' overlap policies, chains):
`extra_keys(...)` renders `Concurrency` declarations for one job, and `BlockedOn.reason` is an
open set of values (`REASON_*` are the ones this module knows; "dependencies" is a chain's).
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from jobline.errors import InvalidJobTypeDeclaration, InvalidPayload

ConcurrencyStrategy = Literal["queue", "skip", "cancel_running", "replace_queued"]
RateStrategy = Literal["delay", "reject"]

REASON_CONCURRENCY = "concurrency"
"""A job waits for a permit of a concurrency key."""
REASON_RATE = "rate_limit"
"""A job waits for the start time its rate limit reserved (`run_after`)."""
REASON_PAUSED = "paused"
"""A job waits because its type is paused (for its owner, or for everyone)."""

MAX_LIMIT = 10_000
"""The largest limit a declaration or an override may set."""
MAX_PRIORITY_S = 600
"""`priority_s` is within -600..600: a head start of at most ten minutes among waiters."""
MAX_KEY_CHARS = 512
"""A rendered key is at most this long (longer ones are hashed: `render_key`)."""
MAX_CONCURRENCY_KEY_CHARS = 256
"""A submit's `concurrency_key` is at most this long."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FIELDS = frozenset({"owner", "type", "key"})


class Priority(enum.StrEnum):
    """A submit's priority: its lane (reserved worker capacity) and its rank among waiters."""

    HIGH = "high"
    DEFAULT = "default"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 (high) .. 2 (low): waiters of a lower rank are woken first."""
        return {"high": 0, "default": 1, "low": 2}[self.value]


def _refused(label: str, problem: str) -> InvalidJobTypeDeclaration:
    return InvalidJobTypeDeclaration(None, f"{label}: {problem}")


def _check_template(label: str, template: str) -> None:
    """Refuse a key template naming a field that does not exist."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _refused(label, f"key template {template!r}: {exc}") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if spec or conversion:
            raise _refused(label, f"key template {template!r}: no format spec")
        if field_name not in _FIELDS and not (
            field_name.startswith("payload.") and len(field_name) > len("payload.")
        ):
            raise _refused(
                label,
                f"key template {template!r} names {{{field_name}}}: use {{owner}}, "
                "{type}, {key} or {payload.<field>}",
            )


def _check_common(kind: str, name: str, template: str, limit: int) -> None:
    label = f"{kind} {name!r}"
    if not _NAME.fullmatch(name):
        raise _refused(label, "a name is 1-64 letters, digits, '_', '.', '-'")
    _check_template(label, template)
    if not 1 <= limit <= MAX_LIMIT:
        raise _refused(label, f"limit must be within 1..{MAX_LIMIT}, not {limit}")


@dataclass(frozen=True)
class Concurrency:
    """At most `limit` jobs whose `key` renders the same run at once (across the types that
    declare the same `name`: a shared pool). `on_limit`: `queue` (wait for a permit),
    `skip` (the new job ends `cancelled`), `cancel_running` (the oldest holder is asked to cancel
    at its next checkpoint; the new job waits), `replace_queued` (the jobs waiting for the key
    are cancelled; the new one waits)."""

    name: str
    key: str = "{owner}"
    limit: int = 1
    on_limit: ConcurrencyStrategy = "queue"

    def __post_init__(self) -> None:
        _check_common("concurrency", self.name, self.key, self.limit)
        if self.on_limit not in ("queue", "skip", "cancel_running", "replace_queued"):
            raise _refused(
                f"{self.name!r}",
                f"on_limit {self.on_limit!r} is not a concurrency strategy",
            )


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` starts per `period_s` per rendered `key`, with up to `burst` at once
    (a token bucket: GCRA). `on_limit`: `delay` (the job is given the next free start time,
    `run_after`: it waits once) or `reject` (the submit is refused: 429 with Retry-After)."""

    name: str
    key: str = "{owner}"
    limit: int = 1
    period_s: float = 1.0
    burst: int = 1
    on_limit: RateStrategy = "delay"

    def __post_init__(self) -> None:
        _check_common("rate limit", self.name, self.key, self.limit)
        if not 0 < self.period_s <= 86_400:
            raise _refused(
                f"{self.name!r}",
                f"period_s must be within (0, 86400], not {self.period_s}",
            )
        if not 1 <= self.burst <= MAX_LIMIT:
            raise _refused(
                f"{self.name!r}",
                f"burst must be within 1..{MAX_LIMIT}, not {self.burst}",
            )
        if self.on_limit not in ("delay", "reject"):
            raise _refused(
                f"{self.name!r}", f"on_limit {self.on_limit!r} is not a rate strategy"
            )

    @property
    def interval(self) -> timedelta:
        """The time one start uses up (period / limit)."""
        return timedelta(seconds=self.period_s / self.limit)


class FlowKey(BaseModel):
    """A concurrency limit a stored job meets: the declaration's name, its rendered key, and
    its limit and strategy as declared (an admin's override of the name wins over `limit`)."""

    model_config = ConfigDict(frozen=True)

    name: str
    key: str
    limit: int = Field(default=1, ge=1, le=MAX_LIMIT)
    on_limit: ConcurrencyStrategy = "queue"

    @property
    def label(self) -> str:
        """`name#key`: what `BlockedOn.key` and the control table name it by."""
        return f"{self.name}#{self.key}"


class BlockedOn(BaseModel):
    """Why a queued job waits and since when. `reason` is an open set (`REASON_*`, and what
    other use cases park jobs for, e.g. a chain's "dependencies"); `key` names what it waits
    for (a limit's `name#key`, a pause's type). `position` is computed when read (0: next)."""

    model_config = ConfigDict(frozen=True)

    reason: str = Field(min_length=1, max_length=64)
    key: str = Field(max_length=2 * MAX_KEY_CHARS)
    since: datetime
    position: int | None = None


# ------------------------------------------------------------------------------ key templates
_SAFE = "-_.~@"


def escape(value: str) -> str:
    """One rendered part, percent-encoded: every character but letters, digits and `-_.~@`
    (so a value never contains a template's separators, `#`, `:` or `/`: two different
    (owner, payload) pairs never render the same key through an escape)."""
    return quote(value, safe=_SAFE)


def _bounded(key: str) -> str:
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: MAX_KEY_CHARS - 66]}~h{digest}"


def _payload_field(payload: Any, path: str, name: str, job_type: str) -> str:
    value = payload
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise InvalidPayload(
                job_type,
                [
                    {
                        "loc": ["payload", *path.split(".")],
                        "msg": f"the limit {name!r} keys on payload.{path}, which is missing",
                        "type": "missing",
                    }
                ],
            )
        value = value[part]
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def render_key(
    template: str,
    *,
    name: str,
    owner: str,
    job_type: str,
    payload: Any,
    concurrency_key: str | None,
) -> str:
    """`template` with `{owner}`, `{type}`, `{key}` (the submit's `concurrency_key`; empty when
    it gave none) and `{payload.<field>}` (dotted: nested objects) filled in, each part escaped
    (`escape`); at most `MAX_KEY_CHARS` (a longer key ends in its hash). A payload field the
    template names and the payload lacks is `InvalidPayload`."""
    parts: list[str] = []
    for literal, field_name, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        if field_name is None:
            continue
        if field_name == "owner":
            value = owner
        elif field_name == "type":
            value = job_type
        elif field_name == "key":
            value = concurrency_key or ""
        else:
            value = _payload_field(
                payload, field_name[len("payload.") :], name, job_type
            )
        parts.append(escape(value))
    return _bounded("".join(parts))


def flow_keys(
    declarations: Iterable[Concurrency],
    *,
    owner: str,
    job_type: str,
    payload: Any,
    concurrency_key: str | None,
) -> tuple[FlowKey, ...]:
    """The keys a job meets: one per declaration, rendered (see `render_key`)."""
    return tuple(
        FlowKey(
            name=declaration.name,
            limit=declaration.limit,
            on_limit=declaration.on_limit,
            key=render_key(
                declaration.key,
                name=declaration.name,
                owner=owner,
                job_type=job_type,
                payload=payload,
                concurrency_key=concurrency_key,
            ),
        )
        for declaration in declarations
    )


extra_keys = flow_keys
"""For other use cases (schedules' overlap policies): the `FlowKey`s of extra `Concurrency`
declarations of one job, to store on it (`Job.flow_keys`) beside its type's."""


OWNER_LIMIT = "owner"
"""The name of the optional per-owner running cap (`JOBLINE_OWNER_CONCURRENCY`): keyed on the
authenticated identity (the job's owner), never on a key the client chooses."""


def owner_cap(owner: str, limit: int) -> FlowKey:
    """The per-owner running cap's key for `owner`."""
    return FlowKey(name=OWNER_LIMIT, key=escape(owner), limit=limit, on_limit="queue")


PRIORITY_LANES = frozenset({"high", "low"})
"""The lanes priorities add (the default lane's worker, with queues of their own)."""


def lane_of(lane: str, priority: Priority) -> str:
    """The lane of a job of `priority` whose type runs in `lane`: high and low jobs of the
    default lane have queues of their own; the long lane has one queue for every priority."""
    if lane == "default" and priority is not Priority.DEFAULT:
        return priority.value
    return lane


def message_group(owner: str) -> str:
    """The SQS `MessageGroupId` of an owner's messages (fair queues share capacity between
    groups): the owner escaped to SQS's alphabet (`escape`), at most 128 characters (a longer
    one is its prefix and its hash)."""
    escaped = escape(owner)
    if len(escaped) <= 128:
        return escaped
    return f"{escaped[:63]}~{hashlib.sha256(owner.encode()).hexdigest()[:64]}"


# ----------------------------------------------------------------------------------- waiters
def waiter_rank(
    priority: str | None, priority_s: int | None, created_at: datetime
) -> str:
    """A waiter's place among the waiters of one key, as text that sorts in waking order:
    priority first (high, default, low), then arrival (the job's submit time) less its head
    start (`priority_s` seconds earlier). Deterministic, so a waiter written twice is one."""
    rank = Priority(priority or Priority.DEFAULT).rank
    arrival_ms = int(created_at.timestamp() * 1000) - 1000 * (priority_s or 0)
    return f"{rank}#{arrival_ms:015d}"


# ------------------------------------------------------------------------------- rate limits
@dataclass(frozen=True)
class RateBucket:
    """A rate limit's state at one key, GCRA: `tat` (the theoretical arrival time) is when the
    bucket is full again. A start at `now` conforms when `tat - now <= (burst - 1) * interval`.
    `reserve` gives the earliest conforming start at or after `now` and the bucket after it."""

    tat: datetime | None

    def reserve(self, limit: RateLimit, now: datetime) -> tuple[datetime, datetime]:
        """(start, the bucket's `tat` after the start is taken)."""
        interval = limit.interval
        tolerance = interval * (limit.burst - 1)
        tat = self.tat if self.tat is not None and self.tat > now else now
        start = max(now, tat - tolerance)
        return start, tat + interval

    @staticmethod
    def retry_after(start: datetime, now: datetime) -> int:
        """Whole seconds until `start` (at least 1): a rejected submit's Retry-After."""
        return max(1, math.ceil((start - now).total_seconds()))


# ---------------------------------------------------------------- what the control table holds
@dataclass(frozen=True)
class Holder:
    """A permit of a concurrency key: the job holding it and the claim (lease id) that took it.
    It is valid only while that job is running (`Admission`: a holder whose job is not is
    removed); a later claim of the same job takes the entry over."""

    job_id: str
    lease_id: str
    at: datetime


@dataclass(frozen=True)
class Permits:
    """A concurrency key's permits as stored: its holders, and the limit last admitted under."""

    holders: tuple[Holder, ...] = ()
    limit: int | None = None


@dataclass(frozen=True)
class Waiter:
    """A parked job in its queue's order (`rank`: `waiter_rank`; `queue`: the control table's
    partition, `"c#" + FlowKey.label` or `"p#" + pause scope`)."""

    queue: str
    rank: str
    job_id: str
    owner: str

    @property
    def sort_key(self) -> str:
        """Its place in `queue`: `w#<rank>#<job id>`."""
        return f"w#{self.rank}#{self.job_id}"


@dataclass(frozen=True)
class FlowSettings:
    """What admins set live: limits by name (over the declarations), and pauses by scope
    (`pause_scope`) with when they began."""

    overrides: Mapping[str, int]
    pauses: Mapping[str, datetime]

    def limit_of(self, key: FlowKey) -> int:
        """The limit `key` is admitted under: an override of its name, else its own."""
        return self.overrides.get(key.name, key.limit)

    def pause_of(self, job_type: str, owner: str) -> str | None:
        """The pause scope that holds jobs of `job_type` of `owner` (the owner's own first,
        then everyone's), or None."""
        for scope in (pause_scope(job_type, owner), pause_scope(job_type, None)):
            if scope in self.pauses:
                return scope
        return None


NO_FLOW_SETTINGS = FlowSettings(overrides={}, pauses={})


def pause_scope(job_type: str, owner: str | None) -> str:
    """A pause's scope: one type for everyone (`type`), or for one owner (`type#owner`)."""
    scope = escape(job_type)
    return scope if owner is None else f"{scope}#{escape(owner)}"


def concurrency_queue(key: FlowKey) -> str:
    """The waiters' partition of a concurrency key."""
    return f"c#{key.label}"


def pause_queue(scope: str) -> str:
    """The waiters' partition of a pause."""
    return f"p#{scope}"
