"""`make sam-events`: the sample events of `events/` that name a job, rewritten to name a real job
of the running `make run`, for `sam local invoke` (docs/local-development.md).

It submits a `sleep` job through `make run`'s API as the caller of the sample API events (the
`sub` of their JWT claims, sent as X-Dev-User), then writes to `.jobline-local/events/`:
- `api_get_job.json`, `api_cancel_job.json`: the job's id in their path;
- `worker_sqs_batch.json`, `dlq_jobs.json`: one record whose message names the job (its MD5
  recomputed).
A sleep of a minute leaves time to read it running and to cancel it.

    python -m jobline_local.sam_events [--api URL] [--seconds 60] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from jobline_local.settings import LocalSettings
from jobline_local.template import REPO_ROOT

EVENTS_DIR = REPO_ROOT / "events"
OUT_DIR = REPO_ROOT / ".jobline-local" / "events"
API_EVENTS = ("api_get_job", "api_cancel_job")
"""API events whose path names a job."""
MESSAGE_EVENTS = ("worker_sqs_batch", "dlq_jobs")
"""SQS events whose records carry a job message."""
_JOB_PATH = re.compile(r"/jobs/([0-9a-f]{32})")


def load(name: str, events_dir: Path = EVENTS_DIR) -> dict[str, Any]:
    """A sample event of `events/`."""
    event: dict[str, Any] = json.loads((events_dir / f"{name}.json").read_text())
    return event


def sample_caller(events_dir: Path = EVENTS_DIR) -> str:
    """The caller of the sample API events: the `sub` claim their authorizer passes."""
    claims = load("api_get_job", events_dir)["requestContext"]["authorizer"]["jwt"]
    return str(claims["claims"]["sub"])


def events_for_job(
    job_id: str, owner: str, job_type: str, events_dir: Path = EVENTS_DIR
) -> dict[str, dict[str, Any]]:
    """The sample events that name a job, naming `job_id` instead (file stem -> event)."""
    events: dict[str, dict[str, Any]] = {}
    for name in API_EVENTS:
        event = load(name, events_dir)
        match = _JOB_PATH.search(event["rawPath"])
        if match is None:
            raise ValueError(f"events/{name}.json names no job in its rawPath")
        events[name] = json.loads(json.dumps(event).replace(match.group(1), job_id))
    body = json.dumps(
        {"job_id": job_id, "owner": owner, "job_type": job_type},
        separators=(",", ":"),
    )
    for name in MESSAGE_EVENTS:
        event = load(name, events_dir)
        record = dict(event["Records"][0])
        record["body"] = body
        record["md5OfBody"] = hashlib.md5(body.encode()).hexdigest()
        events[name] = {**event, "Records": [record]}
    return events


def submit(api_url: str, owner: str, seconds: float) -> dict[str, Any]:
    """Submit a sleep job through the API as `owner`; the job as the API answers."""
    request = urllib.request.Request(
        f"{api_url}/jobs",
        data=json.dumps({"type": "sleep", "payload": {"seconds": seconds}}).encode(),
        method="POST",
        headers={"X-Dev-User": owner, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        job: dict[str, Any] = json.loads(response.read())
        return job


def main(argv: list[str] | None = None) -> int:
    """Submit the job, write the events, say where they are; 1 when the API cannot be reached."""
    settings = LocalSettings()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    parser = argparse.ArgumentParser(
        prog="python -m jobline_local.sam_events", description=__doc__
    )
    parser.add_argument(
        "--api",
        default=f"http://{host}:{settings.api_port}",
        help="the API of the running `make run` (default: from JOBLINE_LOCAL_*)",
    )
    parser.add_argument(
        "--seconds", type=float, default=60, help="how long the job sleeps"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where to write")
    args = parser.parse_args(argv)
    owner = sample_caller()
    try:
        job = submit(args.api, owner, args.seconds)
    except urllib.error.HTTPError as exc:
        sys.stderr.write(
            f"sam-events: the API at {args.api} answered {exc.code}: {exc.read()!r}\n"
        )
        return 1
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(
            f"sam-events: cannot submit a job to {args.api} ({exc}); is `make run` running?\n"
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, event in events_for_job(job["id"], owner, job["type"]).items():
        (args.out / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n")
    sys.stdout.write(
        f"Submitted {job['type']} job {job['id']} as {owner} (the sample events' caller).\n"
        f"Events naming it: {args.out}/"
        + ", ".join(f"{name}.json" for name in API_EVENTS + MESSAGE_EVENTS)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
