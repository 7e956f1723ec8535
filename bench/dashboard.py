"""What one open dashboard tab costs: bytes and API calls per minute on an owner with 1,000 jobs.

Starts the whole local stack (moto server, the API under uvicorn, the pollers) on free loopback
ports, writes the jobs straight into its table (a mix of statuses, each with a payload and, when
it succeeded, a result of `--payload-bytes`), opens `/ui/` in headless chromium (Playwright, Debian's
`/usr/bin/chromium`) as that owner, lets it sit on the jobs view with auto-refresh on for
`--seconds`, and counts every response the page received: bytes (headers and body, as the
browser saw them) and calls, per kind of call, as a rate per minute, and what the API read from
DynamoDB for them (Queries, BatchGetItems, items, and the read units those cost, estimated from
each item's size). Then, auto-refresh off, it clicks "count again" once and reports that alone.

    python -m bench.dashboard [--jobs 1000] [--seconds 120] [--payload-bytes 4096] [--json PATH]

Not part of `make bench` (it needs chromium and a minute); docs/dashboard.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHROMIUM = Path(os.environ.get("JOBLINE_BROWSER_CHROMIUM", "/usr/bin/chromium"))
OWNER = "dashboard-bench"
STATUS_MIX = (
    ("succeeded", 0.85),
    ("failed", 0.05),
    ("cancelled", 0.03),
    ("dead_lettered", 0.02),
    ("queued", 0.03),
    ("running", 0.02),
)
"""How the seeded jobs are spread over the statuses (what a busy owner's table looks like)."""


@dataclass
class Measured:
    """What the tab downloaded while it sat on the jobs view, and what the API read for it."""

    jobs: int
    payload_bytes: int
    seconds: float
    bytes_by_kind: Counter[str] = field(default_factory=Counter)
    calls_by_kind: Counter[str] = field(default_factory=Counter)
    reads: Counter[str] = field(default_factory=Counter)
    """DynamoDB work of the API: Queries, index entries, BatchGetItems, items."""
    read_units: float = 0.0
    """What those reads cost, eventually consistent (0.5 RRU per 4 KB of each item read)."""
    failed: Counter[str] = field(default_factory=Counter)
    """Calls answered with an error, by status (e.g. 503 when the local moto server fell behind:
    then the figures miss what those calls would have read)."""

    @property
    def read_units_per_minute(self) -> float:
        return self.read_units * 60 / max(self.seconds, 1e-9)

    @property
    def bytes_per_minute(self) -> float:
        return sum(self.bytes_by_kind.values()) * 60 / max(self.seconds, 1e-9)

    @property
    def calls_per_minute(self) -> float:
        return sum(self.calls_by_kind.values()) * 60 / max(self.seconds, 1e-9)

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "payload_bytes": self.payload_bytes,
            "seconds": round(self.seconds, 1),
            "bytes_by_kind": dict(self.bytes_by_kind),
            "calls_by_kind": dict(self.calls_by_kind),
            "reads": dict(self.reads),
            "read_units_per_minute": round(self.read_units_per_minute),
            "failed": dict(self.failed),
            "bytes_per_minute": round(self.bytes_per_minute),
            "calls_per_minute": round(self.calls_per_minute, 1),
        }


def kind_of(url: str) -> str:
    """What a call of the page is for: the list, a count, or something else (by path and query)."""
    parts = urlsplit(url)
    if not parts.path.endswith("/jobs"):
        return parts.path.rsplit("/", 1)[-1] or "page"
    query = parse_qs(parts.query)
    if "status" in query and query.get("limit") in (["100"], ["1"]):
        return f"count {query['status'][0]}"
    return "list"


def item_read_units(item_bytes: int) -> float:
    """What an eventually consistent read of an item this big costs: 0.5 RRU per 4 KB."""
    return 0.5 * -(-item_bytes // 4096)


def seed(stack: Any, jobs: int, payload_bytes: int) -> dict[str, int]:
    """`jobs` jobs of OWNER, straight into the table (no worker runs them), newest last; each
    job's item size (its attributes' names and values, as DynamoDB counts them, roughly)."""
    from jobline.aws.items import job_to_item
    from jobline.aws.repository import DynamoJobRepository
    from jobline.models import Job, JobError, JobStatus

    repository = DynamoJobRepository(stack.dynamodb, stack.table_name)
    rng = random.Random(7)
    statuses = [status for status, _ in STATUS_MIX]
    weights = [weight for _, weight in STATUS_MIX]
    start = datetime.now(UTC) - timedelta(hours=2)
    sizes: dict[str, int] = {}
    for n in range(jobs):
        status = JobStatus(rng.choices(statuses, weights)[0])
        created = start + timedelta(seconds=n)
        payload = {"n": n, "text": "x" * payload_bytes}
        finished = status not in (JobStatus.QUEUED, JobStatus.RUNNING)
        job = Job(
            id=uuid.uuid4().hex,
            owner=OWNER,
            type="echo",
            status=status,
            payload=payload,
            result=payload if status is JobStatus.SUCCEEDED else None,
            error=JobError(type="Boom", message="it broke")
            if status in (JobStatus.FAILED, JobStatus.DEAD_LETTERED)
            else None,
            attempts=0 if status is JobStatus.QUEUED else 1,
            created_at=created,
            updated_at=created + timedelta(seconds=1),
            started_at=None if status is JobStatus.QUEUED else created,
            finished_at=created + timedelta(seconds=1) if finished else None,
        )
        repository.create(job, created)
        sizes[job.id] = sum(
            len(name) + len(json.dumps(value, ensure_ascii=False).encode())
            for name, value in job_to_item(job).items()
        )
    return sizes


def count_reads(
    measuring: list[Measured], sizes: dict[str, int]
) -> Callable[..., None]:
    """A botocore `after-call` hook on the API's DynamoDB client: what each listing read, into
    the last of `measuring` while `watching` is set."""

    def hook(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if not watching.is_set():
            return
        measured = measuring[-1]
        if model.name == "Query":
            entries = parsed.get("Items", [])
            measured.reads["queries"] += 1
            measured.reads["index entries"] += len(entries)
            entry_bytes = sum(len(json.dumps(entry)) for entry in entries)
            measured.read_units += item_read_units(entry_bytes)
        elif model.name == "BatchGetItem":
            measured.reads["batch reads"] += 1
            for items in parsed.get("Responses", {}).values():
                measured.reads["items"] += len(items)
                for item in items:
                    full = sizes.get(item["id"]["S"], 0)
                    measured.read_units += item_read_units(full)

    return hook


watching = threading.Event()
"""Set while the tab is being watched."""


def record(measured: Measured, requests: list[Any]) -> None:
    """Add what the browser received for `requests` to `measured`."""
    for request in requests:
        sizes = request.sizes()
        kind = kind_of(request.url)
        response = request.response()
        if response is not None and response.status >= 400:
            measured.failed[str(response.status)] += 1
        measured.bytes_by_kind[kind] += (
            sizes["responseBodySize"] + sizes["responseHeadersSize"]
        )
        measured.calls_by_kind[kind] += 1


def measure(jobs: int, seconds: float, payload_bytes: int) -> tuple[Measured, Measured]:
    """Run the stack, seed it, watch one tab for `seconds`; then, auto-refresh off, click
    "count again" once. What each cost."""
    from jobline_local.settings import LocalSettings
    from jobline_local.stack import LocalStack
    from playwright.sync_api import sync_playwright

    settings = LocalSettings(
        host="127.0.0.1",
        api_port=0,
        moto_port=0,
        prefix=f"jobline-dash-{uuid.uuid4().hex[:8]}",
        log_level="WARNING",
        shutdown_timeout_seconds=60,
    )
    idle = Measured(jobs=jobs, payload_bytes=payload_bytes, seconds=seconds)
    measuring = [idle]
    with LocalStack(settings) as stack:
        sizes = seed(stack, jobs, payload_bytes)
        from jobline.aws.clients import dynamodb_client

        dynamodb_client().meta.events.register(
            "after-call.dynamodb", count_reads(measuring, sizes)
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic"],
            )
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(
                f"localStorage.setItem('jobline.devUser', {json.dumps(OWNER)})"
            )
            page = context.new_page()
            finished: list[Any] = []
            lock = threading.Lock()

            def on_finished(request: Any) -> None:
                if watching.is_set():
                    with lock:
                        finished.append(request)

            page.on("requestfinished", on_finished)
            page.goto(f"{stack.api_url}/ui/")
            # Warm up: the first list and the first counts are on the page.
            page.wait_for_selector("#job-rows tr")
            page.wait_for_selector("#counts .count")
            watching.set()
            started = time.monotonic()
            page.wait_for_timeout(seconds * 1000)
            watching.clear()
            idle.seconds = time.monotonic() - started
            record(idle, finished)

            recount = Measured(jobs=jobs, payload_bytes=payload_bytes, seconds=0.0)
            if page.locator("#recount").count() == 0:  # a dashboard from before it
                context.close()
                browser.close()
                return idle, recount
            # One "count again", alone: auto-refresh off first (and its last refresh over)
            page.uncheck("#auto-refresh")
            page.wait_for_timeout(5000)
            measuring.append(recount)
            finished.clear()
            before = page.inner_text("#counted")
            watching.set()
            clicked = time.monotonic()
            page.click("#recount")
            page.wait_for_function(
                "before => document.getElementById('counted').textContent !== before",
                arg=before,
                timeout=120_000,
            )
            page.wait_for_timeout(500)
            watching.clear()
            recount.seconds = time.monotonic() - clicked
            record(recount, finished)
            context.close()
            browser.close()
    return idle, recount


def report(idle: Measured, recount: Measured) -> str:
    lines = [
        f"one dashboard tab on {idle.jobs} jobs ({idle.payload_bytes} B payloads), "
        f"{idle.seconds:.0f} s on the jobs view with auto-refresh:",
        f"  {idle.bytes_per_minute / 1_000_000:.2f} MB/min, "
        f"{idle.calls_per_minute:.0f} calls/min"
        + (f", FAILED: {dict(idle.failed)}" if idle.failed else ""),
    ]
    reads = idle.reads
    lines.append(
        f"  API reads: {reads['queries'] * 60 / idle.seconds:.0f} Queries "
        f"({reads['index entries'] * 60 / idle.seconds:.0f} index entries) and "
        f"{reads['batch reads'] * 60 / idle.seconds:.0f} BatchGetItems "
        f"({reads['items'] * 60 / idle.seconds:.0f} items) a minute, "
        f"~{idle.read_units_per_minute:.0f} RRU/min"
    )
    for kind, size in idle.bytes_by_kind.most_common():
        calls = idle.calls_by_kind[kind]
        lines.append(
            f"  {kind:<22} {calls * 60 / idle.seconds:6.1f} calls/min  "
            f"{size * 60 / idle.seconds / 1000:10.1f} kB/min  "
            f"{size / calls / 1000:8.1f} kB/call"
        )
    counted = recount.reads
    if not recount.calls_by_kind:
        return "\n".join(lines)
    lines.append(
        f"one 'count again' (auto-refresh off): {sum(recount.calls_by_kind.values())} calls, "
        f"{sum(recount.bytes_by_kind.values()) / 1000:.1f} kB, {counted['queries']} Queries "
        f"({counted['index entries']} index entries), {counted['batch reads']} BatchGetItems "
        f"({counted['items']} items), ~{recount.read_units:.0f} RRU"
        + (f", FAILED: {dict(recount.failed)}" if recount.failed else "")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--payload-bytes", type=int, default=4096)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        sys.stderr.write(f"chromium not found at {CHROMIUM}\n")
        return 2
    idle, recount = measure(args.jobs, args.seconds, args.payload_bytes)
    sys.stdout.write(report(idle, recount) + "\n")
    if args.json is not None:
        figures = {"idle": idle.as_dict(), "count_again": recount.as_dict()}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
