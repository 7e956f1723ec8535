"""Flow control in the worker (issue 18): admit a claimed job under its concurrency keys and its
type's pause, park it when it must wait, give its permits back when its attempt ends, and wake
the next waiter. The control table (`FlowStore`) holds permits and waiters; the job's row holds
its state (`lifecycle.park`, `lifecycle.wake`), so every step is fenced and safe to repeat.

The protocol, per claimed job (docs/flow-control.md draws it):
1. each of the job's keys (`Job.flow_keys`) is acquired: one conditional write that adds the job
   as a holder while the key has room (an acquire that finds the job holding it already, its
   own earlier try or an earlier claim of the job, takes the entry over);
2. at the limit, the holders' rows are read: a holder whose job is not running any more (its
   worker died and it was dead-lettered, or it ended and its release was lost) is removed, and
   the acquire is tried again. A permit is valid only while its holder job runs;
3. still full: the keys taken are given back, and the key's strategy decides: `queue` parks the
   job (a waiter item, then the row back to `queued` with `blocked_on`: the claim undone, no
   attempt used, the message acknowledged, so no receive is burnt), `skip` ends it `cancelled`,
   `cancel_running` asks the oldest holder to cancel and parks, `replace_queued` cancels the
   waiters and parks. After a park the key is looked at once more (a release that came between
   the full acquire and the waiter's write would have found no one to wake);
4. when the attempt ends (any outcome) its permits are given back, and the first waiter of each
   key is woken (`lifecycle.wake`: the outbox sends its message again);
5. `sweep` (periodic) wakes waiters a lost wake left behind and removes waiters of jobs that no
   longer wait.

A job of a type without limits, paused by no one, costs nothing here: the pauses and overrides
are read once per `refresh_s` per execution environment, never per job.

Other use cases park and wake jobs too (`park`, `wake`, `wake_queue`): a reason is any text
(`BlockedOn.reason`), a queue any partition of the control table.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from jobline import lifecycle, metrics
from jobline.errors import ConditionFailed, StorageUnavailable
from jobline.flow import (
    NO_FLOW_SETTINGS,
    REASON_CONCURRENCY,
    REASON_PAUSED,
    BlockedOn,
    FlowKey,
    FlowSettings,
    Permits,
    Waiter,
    concurrency_queue,
    pause_queue,
    waiter_rank,
)
from jobline.logging import get_logger
from jobline.models import Job, JobError, JobStatus, RunOutcome
from jobline.ports import FlowStore, JobRepository
from jobline.transition import TransitionRefused

log = get_logger(__name__)
T = TypeVar("T")

EVICTION_ROUNDS = 2
"""At a full key, how many times gone holders are removed and the acquire tried again."""
STORE_TRIES = 2
"""Tries of one control-table write whose answer was lost (each is itself retried by botocore):
the retry meets its own earlier success."""
SWEEP_PAGE = 100
"""Waiters the sweep (and a resume) looks at per queue per round."""
WAKE_SLACK = 4
"""Waiters looked at beyond the room a release has: stale ones (jobs that ended) are skipped."""


def _tried(operation: Callable[[], T]) -> T:
    """`operation`, tried again when its answer was lost (it is safe to repeat)."""
    for _ in range(STORE_TRIES - 1):
        try:
            return operation()
        except StorageUnavailable as exc:
            log.warning("flow.store_retried", error=exc.message)
    return operation()


@dataclass
class Admission:
    """Flow control's worker side: admit, park, release, wake, sweep."""

    store: FlowStore
    repository: JobRepository
    clock: Callable[[], datetime]
    retention: timedelta
    refresh_s: float
    """How long the pauses and overrides read are used before they are read again."""
    _settings: FlowSettings = field(default=NO_FLOW_SETTINGS, init=False)
    _read_at: float | None = field(default=None, init=False)

    # --------------------------------------------------------------------- settings
    def settings(self, *, fresh: bool = False) -> FlowSettings:
        """The live overrides and pauses, read at most once per `refresh_s` (`fresh`: now).
        When the control table does not answer, the last ones read (none before the first
        read): a job without limits never waits for flow control's store."""
        now = time.monotonic()
        if fresh or self._read_at is None or now - self._read_at >= self.refresh_s:
            self._read_at = now
            try:
                self._settings = self.store.settings()
            except StorageUnavailable as exc:
                log.warning("flow.settings_unavailable", error=exc.message)
        return self._settings

    # ------------------------------------------------------------------------ admit
    def admit(self, job: Job, *, resumed: bool = False) -> RunOutcome | None:
        """Admit the job just claimed (None: run it), or say what to do with its message when
        it was parked or skipped (acknowledge it: `RunOutcome.DONE`). A `resumed` attempt (a
        continuation) is running already: a pause does not hold it. `StorageUnavailable` when
        the control table did not answer (the keys taken so far given back, if it can be)."""
        settings = self.settings()
        scope = (
            settings.pause_of(job.type, job.owner)
            if settings.pauses and not resumed
            else None
        )
        if scope is not None:
            since = settings.pauses[scope]
            blocked = BlockedOn(reason=REASON_PAUSED, key=scope, since=since)
            return self.park(job, pause_queue(scope), blocked)
        taken: list[FlowKey] = []
        for key in job.flow_keys:
            limit = settings.limit_of(key)
            try:
                acquired = self._acquire(job, key, limit)
            except StorageUnavailable:
                self._give_back_quietly(job, taken)
                raise
            if acquired:
                taken.append(key)
                continue
            self._give_back(job, taken)
            return self._at_limit(job, key, limit)
        if taken:
            log.debug("flow.admitted", keys=[key.label for key in taken])
        return None

    def _acquire(self, job: Job, key: FlowKey, limit: int) -> bool:
        lease = job.lease_id or ""
        for _ in range(EVICTION_ROUNDS + 1):
            found = _tried(
                partial(self.store.acquire, key, limit, job.id, lease, self.clock())
            )
            if found is None:
                return True
            if not self._evict_gone(key, found, job.id):
                return False
        return False

    def _evict_gone(self, key: FlowKey, found: Permits, job_id: str) -> int:
        """Remove the holders of `key` whose jobs are not running; how many were removed."""
        removed = 0
        for holder in found.holders:
            if holder.job_id == job_id:
                continue
            row = self.repository.get(holder.job_id)
            if row is not None and row.status is JobStatus.RUNNING:
                continue
            if _tried(partial(self.store.release, key, holder.job_id, holder.lease_id)):
                removed += 1
                log.warning(
                    "flow.permit_reclaimed",
                    key=key.label,
                    holder=holder.job_id,
                    holder_status=row.status.value if row is not None else None,
                )
        return removed

    def _give_back(self, job: Job, keys: list[FlowKey]) -> None:
        for key in keys:
            _tried(partial(self.store.release, key, job.id, job.lease_id or ""))
            self.wake_next(key)

    def _give_back_quietly(self, job: Job, keys: list[FlowKey]) -> None:
        """`_give_back` while the store fails: what it cannot give back now, the next full
        acquire or the sweep takes back (the job is not running any more by then)."""
        try:
            self._give_back(job, keys)
        except StorageUnavailable as exc:
            log.warning("flow.give_back_failed", error=exc.message)

    def _at_limit(self, job: Job, key: FlowKey, limit: int) -> RunOutcome:
        """The key is full: its strategy decides."""
        now = self.clock()
        log.info("flow.at_limit", key=key.label, limit=limit, on_limit=key.on_limit)
        if key.on_limit == "skip":
            return self._skip(job, key, limit, now)
        if key.on_limit == "cancel_running":
            self._cancel_oldest_holder(key, now)
        elif key.on_limit == "replace_queued":
            self._cancel_waiters(key, now)
        blocked = BlockedOn(reason=REASON_CONCURRENCY, key=key.label, since=now)
        return self.park(job, concurrency_queue(key), blocked)

    def _skip(self, job: Job, key: FlowKey, limit: int, now: datetime) -> RunOutcome:
        error = JobError(
            type="ConcurrencyLimit",
            message=f"skipped: {limit} job(s) already run under the limit "
            f"{key.name!r} (key {key.key!r}; on_limit skip)",
        )
        write = lifecycle.skip(job, now, error, self.retention)
        try:
            self.repository.update(job.id, write.update, write.precondition)
        except ConditionFailed:
            log.info("flow.skip_discarded", reason="job changed under its claim")
            return RunOutcome.DONE
        log.info(
            "job.cancelled",
            reason="concurrency_skip",
            key=key.label,
            **metrics.emf(job.type, counts=["JobsCancelled", "JobsSkipped"]),
        )
        return RunOutcome.DONE

    def _cancel_oldest_holder(self, key: FlowKey, now: datetime) -> None:
        permits = self.store.permits(key)
        for holder in sorted(permits.holders, key=lambda h: h.at):
            row = self.repository.get(holder.job_id)
            if row is None or row.status is not JobStatus.RUNNING:
                continue
            if row.cancel_requested_at is not None:
                return  # asked already: it ends at its next checkpoint
            write = lifecycle.request_cancel(row, now, uuid.uuid4().hex)
            try:
                self.repository.update(row.id, write.update, write.precondition)
            except ConditionFailed:
                continue
            log.info("flow.holder_cancel_requested", key=key.label, holder=row.id)
            return

    def _cancel_waiters(self, key: FlowKey, now: datetime) -> None:
        for waiter in self.store.waiters(concurrency_queue(key), SWEEP_PAGE):
            row = self.repository.get(waiter.job_id)
            if (
                row is not None
                and row.status is JobStatus.QUEUED
                and row.blocked_on is not None
            ):
                replaced = JobError(
                    type="ConcurrencyReplaced",
                    message=f"replaced by a newer job under the limit {key.name!r} "
                    f"(key {key.key!r}; on_limit replace_queued)",
                )
                write = lifecycle.cancel_queued(
                    row, now, self.retention, uuid.uuid4().hex, replaced
                )
                try:
                    self.repository.update(row.id, write.update, write.precondition)
                    log.info(
                        "job.cancelled",
                        job_id=row.id,
                        reason="concurrency_replaced",
                        key=key.label,
                        **metrics.emf(row.type, counts=["JobsCancelled"]),
                    )
                except ConditionFailed:
                    continue
            self.store.remove_waiter(waiter)

    # -------------------------------------------------------------------- park, wake
    def park(self, job: Job, queue: str, blocked: BlockedOn) -> RunOutcome:
        """Park the claimed `job` in `queue` (a waiter item first, then the row: a wake that
        finds the row still running leaves the waiter for later). The message is acknowledged.
        Callable from other use cases (any `blocked.reason`)."""
        waiter = Waiter(
            queue,
            waiter_rank(job.priority, job.priority_s, job.created_at),
            job.id,
            job.owner,
        )
        _tried(lambda: self.store.add_waiter(waiter, blocked.since))
        write = lifecycle.park(job, self.clock(), blocked)
        try:
            self.repository.update(job.id, write.update, write.precondition)
        except ConditionFailed:
            self.store.remove_waiter(waiter)
            log.info("flow.park_discarded", reason="job changed under its claim")
            return RunOutcome.DONE
        log.info(
            "job.parked",
            reason=blocked.reason,
            key=blocked.key,
            **metrics.emf(job.type, counts=["JobsParked"]),
        )
        self._look_again(queue)
        return RunOutcome.DONE

    def _look_again(self, queue: str) -> None:
        """After a park: wake the queue's first waiters if what it waits for is free by now."""
        try:
            if queue.startswith("p#"):
                if queue[2:] not in self.settings(fresh=True).pauses:
                    self.wake_queue(queue)
                return
            key = _key_of(queue)
            if key is not None:
                self._wake_if_room(key, self.settings())
        except StorageUnavailable as exc:
            log.warning("flow.look_again_failed", error=exc.message)

    def _wake_if_room(self, key: FlowKey, settings: FlowSettings) -> int:
        permits = self.store.permits(key)
        limit = settings.overrides.get(key.name, permits.limit or key.limit)
        room = limit - len(permits.holders)
        return self._wake(concurrency_queue(key), key.label, room) if room > 0 else 0

    def wake(self, job_id: str) -> bool:
        """Wake the parked job `job_id` (any reason): its message is sent again (the outbox).
        Whether it was woken now (False: not parked, or woken already). For other use cases;
        its waiter item, if any, is left for the queue's next wake or the sweep."""
        row = self.repository.get(job_id)
        if row is None or row.status is not JobStatus.QUEUED or row.blocked_on is None:
            return False
        return self._wake_row(row)

    def _wake_row(self, row: Job) -> bool:
        try:
            write = lifecycle.wake(row, self.clock())
        except TransitionRefused:
            return False
        try:
            self.repository.update(row.id, write.update, write.precondition)
        except ConditionFailed:
            return False
        blocked = row.blocked_on
        log.info(
            "job.woken",
            job_id=row.id,
            reason=blocked.reason if blocked else None,
            key=blocked.key if blocked else None,
            **metrics.emf(row.type, counts=["JobsWoken"]),
        )
        return True

    def wake_next(self, key: FlowKey) -> int:
        """Wake the first waiter of `key` (a permit was just given back)."""
        try:
            return self._wake(concurrency_queue(key), key.label, 1)
        except StorageUnavailable as exc:
            log.warning("flow.wake_failed", key=key.label, error=exc.message)
            return 0

    def wake_queue(self, queue: str) -> int:
        """Wake every waiter of `queue` (a resumed pause), page by page."""
        woken = 0
        while True:
            page = self._wake(queue, queue[2:], SWEEP_PAGE)
            woken += page
            if page < SWEEP_PAGE:
                return woken

    def _wake(self, queue: str, label: str, room: int) -> int:
        """Wake up to `room` waiters of `queue` parked on `label`, in order, removing waiters of
        jobs that no longer wait for it; a waiter whose job is running is left (its park is on
        its way, or it was woken and its waiter's removal was lost)."""
        woken = 0
        page = min(room + WAKE_SLACK, SWEEP_PAGE)
        for waiter in self.store.waiters(queue, page):
            row = self.repository.get(waiter.job_id)
            if row is not None and row.owner == waiter.owner:
                if row.status is JobStatus.RUNNING:
                    continue
                blocked = row.blocked_on
                parked_here = (
                    row.status is JobStatus.QUEUED
                    and blocked is not None
                    and blocked.key == label
                )
                if parked_here and woken >= room:
                    continue  # waits on: no room for it yet
                if parked_here and self._wake_row(row):
                    woken += 1
            _tried(partial(self.store.remove_waiter, waiter))
        return woken

    # ---------------------------------------------------------------------- release
    def release(self, job: Job) -> None:
        """Give back the permits the attempt of `job` (as claimed) took, and wake the first
        waiter of each key. Safe to repeat; a permit another claim of the job took over is
        left to it."""
        for key in job.flow_keys:
            try:
                _tried(partial(self.store.release, key, job.id, job.lease_id or ""))
            except StorageUnavailable as exc:
                log.warning("flow.release_failed", key=key.label, error=exc.message)
                continue  # the holder's job is not running: the next admission removes it
            self.wake_next(key)

    # ------------------------------------------------------------------------ sweep
    def sweep(self) -> int:
        """Wake the waiters a lost wake left behind, give back permits of jobs that no longer
        run, and remove waiters of jobs that no longer wait (the worker's `FlowSweep` schedule,
        every minute). How many jobs it woke."""
        settings = self.settings(fresh=True)
        woken = 0
        for queue in self.store.sweep_queues():
            try:
                if queue.startswith("p#"):
                    room = 0 if queue[2:] in settings.pauses else SWEEP_PAGE
                    woken += self._wake(queue, queue[2:], room)
                    continue
                key = _key_of(queue)
                if key is None:
                    continue  # another use case's queue: it sweeps its own
                permits = self.store.permits(key)
                self._evict_gone(key, permits, "")
                woken += self._sweep_key(key, settings)
            except StorageUnavailable as exc:
                log.warning("flow.sweep_failed", queue=queue, error=exc.message)
        if woken:
            log.warning("flow.swept", woken=woken)
        return woken

    def _sweep_key(self, key: FlowKey, settings: FlowSettings) -> int:
        permits = self.store.permits(key)
        limit = settings.overrides.get(key.name, permits.limit or key.limit)
        room = max(0, limit - len(permits.holders))
        return self._wake(concurrency_queue(key), key.label, room)


def _key_of(queue: str) -> FlowKey | None:
    """The concurrency key of a waiters' queue (`c#name#key`), or None."""
    if not queue.startswith("c#"):
        return None
    name, _, key = queue[2:].partition("#")
    return FlowKey(name=name, key=key)
