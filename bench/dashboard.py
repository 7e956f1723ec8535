"""What one open dashboard tab costs: bytes and API calls per minute on an owner with 1,000 jobs.

Starts the whole local stack (moto server, the API under uvicorn, the pollers) on free loopback
ports, writes the jobs straight into its table (a mix of statuses, each with a payload and, when
it succeeded, a result of `--payload-bytes`), opens `/ui/` in headless chromium (Playwright, Debian's
`/usr/bin/chromium`) as that owner, lets it sit on the jobs view with auto-refresh on for
`--seconds`, and counts every response the page received: bytes (headers and body, as the
browser saw them) and calls, per kind of call.

    python -m bench.dashboard [--jobs 1000] [--seconds 60] [--payload-bytes 4096] [--json PATH]

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
    """What the tab downloaded while it sat on the jobs view."""

    jobs: int
    payload_bytes: int
    seconds: float
    bytes_by_kind: Counter[str] = field(default_factory=Counter)
    calls_by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def bytes_per_minute(self) -> float:
        return sum(self.bytes_by_kind.values()) * 60 / self.seconds

    @property
    def calls_per_minute(self) -> float:
        return sum(self.calls_by_kind.values()) * 60 / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "payload_bytes": self.payload_bytes,
            "seconds": round(self.seconds, 1),
            "bytes_by_kind": dict(self.bytes_by_kind),
            "calls_by_kind": dict(self.calls_by_kind),
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


def seed(stack: Any, jobs: int, payload_bytes: int) -> None:
    """`jobs` jobs of OWNER, straight into the table (no worker runs them), newest last."""
    from jobline.aws.repository import DynamoJobRepository
    from jobline.models import Job, JobError, JobStatus

    repository = DynamoJobRepository(stack.dynamodb, stack.table_name)
    rng = random.Random(7)
    statuses = [status for status, _ in STATUS_MIX]
    weights = [weight for _, weight in STATUS_MIX]
    start = datetime.now(UTC) - timedelta(hours=2)
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


def measure(jobs: int, seconds: float, payload_bytes: int) -> Measured:
    """Run the stack, seed it, and watch one tab for `seconds`."""
    from jobline_local.settings import LocalSettings
    from jobline_local.stack import LocalStack
    from playwright.sync_api import sync_playwright

    settings = LocalSettings(
        host="127.0.0.1",
        api_port=0,
        moto_port=0,
        prefix=f"jobline-dash-{uuid.uuid4().hex[:8]}",
        log_level="WARNING",
    )
    measured = Measured(jobs=jobs, payload_bytes=payload_bytes, seconds=seconds)
    with LocalStack(settings) as stack:
        seed(stack, jobs, payload_bytes)
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
            watching = False

            def on_finished(request: Any) -> None:
                if watching:
                    with lock:
                        finished.append(request)

            page.on("requestfinished", on_finished)
            page.goto(f"{stack.api_url}/ui/")
            # Warm up: the first list and the first counts are on the page.
            page.wait_for_selector("#job-rows tr")
            page.wait_for_selector("#counts .count")
            watching = True
            started = time.monotonic()
            page.wait_for_timeout(seconds * 1000)
            watching = False
            measured.seconds = time.monotonic() - started
            for request in finished:
                sizes = request.sizes()
                kind = kind_of(request.url)
                measured.bytes_by_kind[kind] += (
                    sizes["responseBodySize"] + sizes["responseHeadersSize"]
                )
                measured.calls_by_kind[kind] += 1
            context.close()
            browser.close()
    return measured


def report(measured: Measured) -> str:
    lines = [
        f"one dashboard tab on {measured.jobs} jobs ({measured.payload_bytes} B payloads), "
        f"{measured.seconds:.0f} s on the jobs view with auto-refresh:",
        f"  {measured.bytes_per_minute / 1_000_000:.2f} MB/min, "
        f"{measured.calls_per_minute:.0f} calls/min",
    ]
    for kind, size in measured.bytes_by_kind.most_common():
        calls = measured.calls_by_kind[kind]
        lines.append(
            f"  {kind:<22} {calls * 60 / measured.seconds:6.1f} calls/min  "
            f"{size * 60 / measured.seconds / 1000:10.1f} kB/min  "
            f"{size / calls / 1000:8.1f} kB/call"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--payload-bytes", type=int, default=4096)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        sys.stderr.write(f"chromium not found at {CHROMIUM}\n")
        return 2
    measured = measure(args.jobs, args.seconds, args.payload_bytes)
    sys.stdout.write(report(measured) + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps(measured.as_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
