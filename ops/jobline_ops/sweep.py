"""Sweep: send the message of every job the outbox never dispatched.

    python -m jobline_ops.sweep [--min-age S] [--max N] [--dry-run] [--local]
    make sweep [MIN_AGE=900] [MAX=1000] [DRY_RUN=1] [LOCAL=0]

A submit (or a retry) writes the job `queued` with its `dispatch` mark, and the table's stream hands
that write to the outbox, which sends the job's message; the claim clears the mark. The stream keeps
a write for 24 hours: if the jobs queue (or the outbox) is down longer than that, the outbox's
recovery finds the records gone (`outbox.records_gone`, its dead-letter alarm) and such jobs stay
`queued` with no message. This command finds them and sends their messages, through the same
dispatch use case as the outbox (`JobService.dispatch`): run it once the outage is over.

It scans the jobs table for items `queued` with a `dispatch` mark older than `--min-age` seconds
(default 900: SQS delays a message by at most 15 minutes, so a younger mark may still be on its way
or its message still delayed), pages through the whole table, and sends at most `--max` messages in
batches of ten. A job found twice, or one whose message was in fact on the queue, gets a second
message, which the worker's claim makes harmless (the claim is conditional on the job being queued
and due; a duplicate is acknowledged without running anything). `--dry-run` lists what it would send.
One line is printed per job, then a summary; the exit status is 1 when a message could not be sent
(run it again) and 2 when the table could not be read.

**A scan, on purpose.** A sparse index of marked jobs would find them without reading the table, but
would cost two index writes per job (the mark set at submit, cleared at claim) on every job, forever,
for an outage that the stream's 24 hours already covers. A scan reads the whole table once (about
$0.25 per million 4 KB reads, eventually consistent, at us-east-1 prices), only when someone runs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError
from jobline.aws.queue import SqsJobQueue
from jobline.aws.repository import DynamoJobRepository
from jobline.aws.stranded import scan_stranded
from jobline.bootstrap import build_service
from jobline.clock import utcnow
from jobline.lifecycle import dispatch_mark
from jobline.logging import configure
from jobline.models import Job
from jobline_local.settings import LocalSettings

from jobline_ops.environment import Environment, aws_environment, local_environment

DEFAULT_MIN_AGE_S = 900
DEFAULT_MAX = 1000
BATCH = 10
"""The dispatch use case sends ten messages per SendMessageBatch."""
PAGE_ITEMS = 1000
"""Items a Scan page evaluates at most (a page also ends at 1 MB)."""


@dataclass
class SweepReport:
    """What one sweep did."""

    scanned: int = 0
    """Items the scan read (the whole table, unless `--max` stopped it)."""
    found: int = 0
    dispatched: int = 0
    failed: int = 0


class Sweep:
    """Finds stranded jobs in `table` and hands them to `dispatch`; see the module docstring."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        dispatch: Callable[[Sequence[Job]], list[bool]],
        *,
        clock: Callable[[], datetime] = utcnow,
        out: TextIO | None = None,
        page_items: int = PAGE_ITEMS,
    ) -> None:
        self._dynamodb = dynamodb
        self.table = table
        self._dispatch = dispatch
        self._clock = clock
        self._out = out
        self._page_items = page_items

    def run(
        self, *, min_age_s: float, max_jobs: int = DEFAULT_MAX, dry_run: bool = False
    ) -> SweepReport:
        """Send (or with `dry_run` list) the messages of at most `max_jobs` stranded jobs."""
        if max_jobs < 1:
            raise ValueError("max must be at least 1")
        if min_age_s < 0:
            raise ValueError("min-age must not be negative")
        now = self._clock()
        cutoff = dispatch_mark(now - timedelta(seconds=min_age_s))
        report = SweepReport()
        batch: list[Job] = []
        for job in self._stranded(cutoff, report):
            report.found += 1
            batch.append(job)
            if len(batch) == BATCH:
                self._send(batch, now, report, dry_run)
                batch = []
            if report.found >= max_jobs:
                break
        if batch:
            self._send(batch, now, report, dry_run)
        self._print(
            f"sweep {self.table}: scanned={report.scanned} found={report.found} "
            f"dispatched={report.dispatched} failed={report.failed} "
            f"(marks older than {min_age_s:g} s{', dry run' if dry_run else ''})"
        )
        return report

    def _stranded(self, cutoff: int, report: SweepReport) -> Iterator[Job]:
        """Queued jobs whose dispatch mark is older than `cutoff`, page by page."""

        def count(n: int) -> None:
            report.scanned += n

        return scan_stranded(
            self._dynamodb, self.table, cutoff, self._page_items, count
        )

    def _send(
        self, jobs: Sequence[Job], now: datetime, report: SweepReport, dry_run: bool
    ) -> None:
        sent = [False] * len(jobs) if dry_run else self._dispatch(jobs)
        for job, ok in zip(jobs, sent, strict=True):
            waiting = _seconds_since(job, now)
            if dry_run:
                verb = "would dispatch"
            elif ok:
                verb = "dispatched"
                report.dispatched += 1
            else:
                verb = "failed"
                report.failed += 1
            self._print(
                f"{verb:<14} job={job.id} owner={job.owner} type={job.type} "
                f"waiting={waiting}s"
            )

    def _print(self, line: str) -> None:
        out = self._out or sys.stdout
        out.write(line + "\n")
        out.flush()


def _seconds_since(job: Job, now: datetime) -> int:
    """Whole seconds since the job's dispatch was asked for."""
    mark = dispatch_mark(now)
    return max(0, (mark - (job.dispatch if job.dispatch is not None else mark)) // 1000)


def build_sweep(env: Environment, **options: Any) -> Sweep:
    """The sweep over the settings' table, sending through the service's dispatch use case."""
    if env.settings is None:
        raise ValueError(
            "set JOBLINE_TABLE_NAME and JOBLINE_QUEUE_URL (or use --local)"
        )
    settings = env.settings
    service = build_service(
        settings,
        repository=DynamoJobRepository(env.dynamodb, settings.table_name),
        queue=SqsJobQueue(env.sqs, settings.queue_url),
    )
    return Sweep(env.dynamodb, settings.table_name, service.dispatch, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command: 0 when every stranded job got its message, 1 when some did not, 2 when
    the table could not be read."""
    parser = argparse.ArgumentParser(
        prog="python -m jobline_ops.sweep",
        description="Send the message of every queued job the outbox never dispatched.",
    )
    parser.add_argument(
        "--min-age",
        type=float,
        default=DEFAULT_MIN_AGE_S,
        help="only marks older than this many seconds (default 900)",
    )
    parser.add_argument(
        "--max", type=int, default=DEFAULT_MAX, help="jobs at most (default 1000)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the jobs, send nothing"
    )
    parser.add_argument(
        "--local", action="store_true", help="use make run's moto server and resources"
    )
    args = parser.parse_args(argv)
    configure("WARNING")  # the service's own log lines would drown the report
    try:
        env = local_environment(LocalSettings()) if args.local else aws_environment()
        sweep = build_sweep(env)
        report = sweep.run(
            min_age_s=args.min_age, max_jobs=args.max, dry_run=args.dry_run
        )
    except ValueError as exc:
        parser.error(str(exc))
    except (ClientError, BotoCoreError) as exc:
        sys.stderr.write(f"sweep: {exc}\n")
        return 2
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
