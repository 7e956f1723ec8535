"""Submit -> claim latency through the whole local stack (`make run`'s): the API over HTTP, the
row's stream record through the outbox dispatcher, SQS, the worker's poller. Each job's own
timestamps say when it was stored (`created_at`), claimed (`started_at`) and finished."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack

from bench.inprocess import quiet


@dataclass(frozen=True)
class Latency:
    claim_s: list[float]
    finish_s: list[float]

    @property
    def claim_median_s(self) -> float:
        return statistics.median(self.claim_s)

    @property
    def finish_median_s(self) -> float:
        return statistics.median(self.finish_s)


def call_api(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call to the local API as the bench's caller: POST with a JSON body, else GET."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method="POST" if data else "GET",
        headers={"X-Dev-User": "bench", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def measure(jobs: int = 20) -> Latency:
    """`jobs` echo jobs, one at a time, each waited for until it succeeded."""
    settings = LocalSettings(
        api_port=0,
        moto_port=0,
        prefix=f"bench-{uuid.uuid4().hex[:6]}",
        log_level="ERROR",
    )
    claims: list[float] = []
    finishes: list[float] = []
    with quiet(), LocalStack(settings) as stack:
        for _ in range(jobs):
            job = call_api(
                f"{stack.api_url}/jobs", {"type": "echo", "payload": {"n": 1}}
            )
            deadline = time.monotonic() + 10
            while job["status"] != "succeeded":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job['id']} did not succeed: {job!r}")
                time.sleep(0.02)
                job = call_api(f"{stack.api_url}/jobs/{job['id']}")
            created = datetime.fromisoformat(job["created_at"])
            claims.append(
                (datetime.fromisoformat(job["started_at"]) - created).total_seconds()
            )
            finishes.append(
                (datetime.fromisoformat(job["finished_at"]) - created).total_seconds()
            )
    return Latency(claim_s=claims, finish_s=finishes)
