"""Flow control as callers and admins see it (issue 18): why a job waits (`explain`), what a
submit would meet (`dry_run`: nothing written), the caller's limits (`limits`), an admin's live
override of a limit (`set_limit`), and pausing or resuming a job type (`pause`, `resume`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import unquote

from jobline.errors import Forbidden, JobTypeNotFound, UnknownJobType, UnknownLimit
from jobline.flow import (
    OWNER_LIMIT,
    REASON_CONCURRENCY,
    REASON_PAUSED,
    REASON_RATE,
    BlockedOn,
    Concurrency,
    FlowKey,
    RateLimit,
    Waiter,
    concurrency_queue,
    escape,
    pause_queue,
    pause_scope,
    waiter_rank,
)
from jobline.logging import get_logger
from jobline.models import Job, JobStatus, SubmitRequest
from jobline.ports import FlowStore
from jobline.registry import JobTypeRegistry
from jobline.usecases.admission import Admission
from jobline.usecases.rates import RateLimiter
from jobline.usecases.submission import Submission

log = get_logger(__name__)

REASON_DELAY = "delay"
"""A dry run's submit waits for its `delay_seconds`."""


@dataclass(frozen=True)
class KeyView:
    """A concurrency key as a caller sees it."""

    name: str
    key: str
    limit: int
    override: int | None
    held: int
    waiting: int
    on_limit: str


@dataclass(frozen=True)
class LimitView:
    """A declared limit (concurrency or rate) of a job type, with the caller's key when the
    key depends on the caller only (`{owner}`, `{type}`): held and waiting there."""

    job_type: str
    kind: str
    """"concurrency" or "rate"."""
    name: str
    key_template: str
    limit: int
    override: int | None
    on_limit: str
    key: str | None = None
    held: int | None = None
    waiting: int | None = None
    period_s: float | None = None
    burst: int | None = None


@dataclass(frozen=True)
class PauseView:
    """A pause in force."""

    job_type: str
    owner: str | None
    """None: every owner's jobs."""
    since: datetime


@dataclass(frozen=True)
class DryRun:
    """What a submit would meet, nothing written."""

    job_type: str
    lane: str
    keys: list[KeyView]
    rates: list[LimitView]
    paused: bool
    estimated_start: datetime
    estimated_cost_usd: float
    wait_reasons: list[str]


PRICE_PER_WRITE_USD = 1.25e-6
"""DynamoDB on demand: one write request unit (us-east-1)."""
PRICE_PER_READ_USD = 0.25e-6
PRICE_PER_MESSAGE_USD = 0.4e-6
"""SQS: one request (a send, a receive, a delete)."""
PRICE_PER_GB_S_USD = 0.0000166667
"""Lambda x86: one GB-second."""
WORKER_MEMORY_GB = 0.5


@dataclass(frozen=True)
class FlowAdmin:
    """Explain, dry runs, limits, overrides, pauses."""

    store: FlowStore
    admission: Admission
    submission: Submission
    rates: RateLimiter
    registry: JobTypeRegistry
    clock: Callable[[], datetime]

    # ---------------------------------------------------------------------- explain
    def explain(self, job: Job) -> BlockedOn | None:
        """Why `job` (queued) waits: parked (with its place in its queue), its type paused
        (before a worker parked it), a rate limit's reserved start, its delay or its backoff."""
        if job.status is not JobStatus.QUEUED:
            return None
        now = self.clock()
        blocked = job.blocked_on
        if blocked is not None:
            queue = (
                concurrency_queue(_flow_key(blocked.key))
                if blocked.reason == REASON_CONCURRENCY
                else pause_queue(blocked.key)
                if blocked.reason == REASON_PAUSED
                else None
            )
            if queue is None:
                return blocked
            rank = waiter_rank(job.priority, job.priority_s, job.created_at)
            position = self.store.position(Waiter(queue, rank, job.id, job.owner))
            return blocked.model_copy(update={"position": position})
        settings = self.admission.settings()
        scope = settings.pause_of(job.type, job.owner)
        if scope is not None:
            return BlockedOn(
                reason=REASON_PAUSED, key=scope, since=settings.pauses[scope]
            )
        due = job.run_after
        if due is None or due <= now or job.attempts > 0:
            return None
        asked = job.created_at + timedelta(seconds=job.delay_seconds)
        if due > asked:  # a rate limit reserved a later start than the submit asked for
            return BlockedOn(reason=REASON_RATE, key="", since=job.created_at)
        return None

    # ---------------------------------------------------------------------- dry run
    def dry_run(self, owner: str, request: SubmitRequest) -> DryRun:
        """Validate a submit as `POST /jobs` would and answer what it would meet: its keys
        (held, limit, waiting), its rate limits' next starts, a pause, its lane, an estimated
        start and cost. Nothing is written (reads only)."""
        plan = self.submission.plan(owner, request)
        now = self.clock()
        settings = self.admission.settings(fresh=True)
        keys = [
            self._key_view(key, settings.overrides.get(key.name))
            for key in plan.flow_keys
        ]
        rates = []
        start = now + timedelta(seconds=request.delay_seconds)
        reasons: list[str] = []
        for view in self.rates.preview(plan.job_type, owner, request, now):
            rates.append(_rate_view(plan.job_type.name, view.limit, view.key))
            if view.start > start:
                start = view.start
                reasons.append(REASON_RATE)
        if request.delay_seconds:
            reasons.append(REASON_DELAY)
        paused = settings.pause_of(plan.job_type.name, owner) is not None
        if paused:
            reasons.append(REASON_PAUSED)
        for key in keys:
            if key.held >= key.limit:
                reasons.append(REASON_CONCURRENCY)
                # One more holder's attempt per waiter ahead, at the type's timeout at most.
                ahead = key.waiting + 1
                start = max(
                    start,
                    now
                    + timedelta(seconds=plan.job_type.timeout_s * ahead / key.limit),
                )
        return DryRun(
            job_type=plan.job_type.name,
            lane=plan.lane,
            keys=keys,
            rates=rates,
            paused=paused,
            estimated_start=start,
            estimated_cost_usd=_cost(
                len(plan.flow_keys),
                len(plan.job_type.rate_limits),
                plan.job_type.timeout_s,
            ),
            wait_reasons=sorted(set(reasons)),
        )

    def _key_view(self, key: FlowKey, override: int | None) -> KeyView:
        permits = self.store.permits(key)
        waiting = self.store.count_waiters(concurrency_queue(key))
        return KeyView(
            name=key.name,
            key=key.key,
            limit=override or key.limit,
            override=override,
            held=len(permits.holders),
            waiting=waiting,
            on_limit=key.on_limit,
        )

    # ---------------------------------------------------------------------- limits
    def limits(self, owner: str) -> tuple[list[LimitView], list[PauseView]]:
        """Every limit the deployment's types declare, with the caller's key where it depends on
        the caller only; the per-owner cap; and the pauses the caller's jobs meet."""
        settings = self.admission.settings(fresh=True)
        views: list[LimitView] = []
        for job_type in self.registry:
            for declared in job_type.concurrency:
                views.append(
                    self._concurrency_view(
                        job_type.name, declared, owner, settings.overrides
                    )
                )
            for rate in job_type.rate_limits:
                views.append(_rate_view(job_type.name, rate, None))
        cap = self.submission.owner_concurrency
        if cap:
            declared = Concurrency(name=OWNER_LIMIT, key="{owner}", limit=cap)
            views.append(
                self._concurrency_view("*", declared, owner, settings.overrides)
            )
        pauses = [
            PauseView(job_type=job_type, owner=paused_owner, since=since)
            for scope, since in sorted(settings.pauses.items())
            for job_type, paused_owner in [_scope_parts(scope)]
            if paused_owner is None or paused_owner == escape(owner)
        ]
        return views, pauses

    def _concurrency_view(
        self,
        job_type: str,
        declared: Concurrency,
        owner: str,
        overrides: Mapping[str, int],
    ) -> LimitView:
        override = overrides.get(declared.name)
        view = LimitView(
            job_type=job_type,
            kind="concurrency",
            name=declared.name,
            key_template=declared.key,
            limit=override or declared.limit,
            override=override,
            on_limit=declared.on_limit,
        )
        if "{payload." in declared.key or "{key}" in declared.key:
            return view  # the caller's keys depend on each submit: not enumerable
        rendered = declared.key.replace("{owner}", escape(owner)).replace(
            "{type}", escape(job_type)
        )
        key = FlowKey(name=declared.name, key=rendered, limit=declared.limit)
        shown = self._key_view(key, override)
        return replace(view, key=rendered, held=shown.held, waiting=shown.waiting)

    def set_limit(self, admin: bool, name: str, limit: int | None) -> None:
        """An admin's override of the concurrency limits called `name` (None: back to the
        declarations), in force at each worker's next read of the settings
        (`JOBLINE_FLOW_REFRESH_S`). Rate limits are changed by their declaration."""
        if not admin:
            raise Forbidden(f"change the limit {name!r}")
        if name not in self._declared_names():
            raise UnknownLimit(name)
        self.store.set_override(name, limit)
        self.admission.settings(fresh=True)  # this environment's workers see it at once
        log.warning("flow.limit_overridden", limit_name=name, limit=limit)
        if limit is not None:
            for queue in self.store.sweep_queues():
                if queue.startswith(f"c#{name}#"):
                    self.admission.sweep()
                    break

    def _declared_names(self) -> set[str]:
        names = {OWNER_LIMIT} if self.submission.owner_concurrency else set()
        for job_type in self.registry:
            names.update(c.name for c in job_type.concurrency)
        return names

    # ---------------------------------------------------------------------- pauses
    def _known(self, job_type: str) -> None:
        """`JobTypeNotFound` unless `job_type` is one of this deployment's (a path names it)."""
        try:
            self.registry.get(job_type)
        except UnknownJobType as exc:
            raise JobTypeNotFound(job_type) from exc

    def pause(
        self, caller: str, admin: bool, job_type: str, everyone: bool
    ) -> PauseView:
        """Pause `job_type`: for the caller's own jobs, or (an admin) for everyone's. Submits
        are still accepted, running jobs finish, queued jobs wait (parked when claimed)."""
        self._known(job_type)
        if everyone and not admin:
            raise Forbidden(f"pause {job_type!r} for every owner")
        scope = pause_scope(job_type, None if everyone else caller)
        now = self.clock()
        self.store.set_pause(scope, now)
        self.admission.settings(fresh=True)  # this environment's workers see it at once
        log.warning("flow.paused", job_type=job_type, everyone=everyone)
        since = self.store.settings().pauses.get(scope, now)
        return PauseView(
            job_type=job_type, owner=None if everyone else caller, since=since
        )

    def resume(self, caller: str, admin: bool, job_type: str, everyone: bool) -> int:
        """Resume `job_type` (the caller's own pause, or an admin's for everyone) and wake the
        jobs it parked; how many were woken."""
        self._known(job_type)
        if everyone and not admin:
            raise Forbidden(f"resume {job_type!r} for every owner")
        scope = pause_scope(job_type, None if everyone else caller)
        self.store.set_pause(scope, None)
        self.admission.settings(fresh=True)  # this environment's workers see it at once
        woken = self.admission.wake_queue(pause_queue(scope))
        log.warning("flow.resumed", job_type=job_type, everyone=everyone, woken=woken)
        return woken


def _flow_key(label: str) -> FlowKey:
    name, _, key = label.partition("#")
    return FlowKey(name=name, key=key)


def _scope_parts(scope: str) -> tuple[str, str | None]:
    """(type, escaped owner or None) of a pause scope; the type unescaped."""
    job_type, _, owner = scope.partition("#")
    return unquote(job_type), owner or None


def _rate_view(job_type: str, rate: RateLimit, key: str | None) -> LimitView:
    return LimitView(
        job_type=job_type,
        kind="rate",
        name=rate.name,
        key_template=rate.key,
        limit=rate.limit,
        override=None,
        on_limit=rate.on_limit,
        key=key,
        period_s=rate.period_s,
        burst=rate.burst,
    )


def _cost(keys: int, rates: int, timeout_s: int) -> float:
    """An upper estimate of one job's cost: the jobs table's writes (submit, claim, outcome),
    two per concurrency key (acquire, release), a read and a write per rate limit, the message
    (send, receive, delete) and the worker's time at the type's timeout."""
    writes = 3 + 2 * keys + rates
    reads = 1 * keys + rates
    return round(
        writes * PRICE_PER_WRITE_USD
        + reads * PRICE_PER_READ_USD
        + 3 * PRICE_PER_MESSAGE_USD
        + timeout_s * WORKER_MEMORY_GB * PRICE_PER_GB_S_USD,
        9,
    )
