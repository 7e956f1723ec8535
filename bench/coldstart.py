"""Cold start as Lambda does it: a fresh interpreter imports the handler module named in
template.yaml with the function's environment and serves one event against the moto server.

Each figure is the time from process start to the first response, interleaved with the other
variants round by round (the order rotates each round) and summarised by its median; ratios are
taken against `python -c pass` in the same virtualenv, measured in the same rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobline.aws.repository import build_create
from jobline.models import Job, JobMessage, JobStatus
from jobline_local.template import load_template

from bench.motoserver import REPO_ROOT, MotoServer

RUNTIME = Path(__file__).with_name("lambda_runtime.py")
NAIVE_DIR = Path(__file__).with_name("naive")
EVENTS = REPO_ROOT / "events"
SHARED = REPO_ROOT / "shared"


def code_dir(function: str) -> Path:
    """A function's CodeUri folder (what Lambda puts in /var/task)."""
    resource = load_template()["Resources"][function]
    code_uri: str = resource["Properties"]["CodeUri"]
    return REPO_ROOT / code_uri


def handler_of(function: str) -> str:
    """The `module.function` handler the template names."""
    handler: str = load_template()["Resources"][function]["Properties"]["Handler"]
    return handler


@dataclass
class Variant:
    """One thing to cold-start: a handler, its environment, and how to make its event."""

    name: str
    function: str
    handler: str
    paths: list[Path]
    make_event: Callable[[MotoServer], dict[str, Any]]
    check: Callable[[MotoServer, dict[str, Any], dict[str, Any]], None]
    timings: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.timings)


def api_event(server: MotoServer) -> dict[str, Any]:
    """GET /jobs/{unknown id}: the route reads DynamoDB and answers 404."""
    event: dict[str, Any] = json.loads((EVENTS / "api_get_job.json").read_text())
    return event


def check_api(
    server: MotoServer, event: dict[str, Any], response: dict[str, Any]
) -> None:
    if response.get("statusCode") != 404:
        raise RuntimeError(f"expected a 404 from the API, got {response!r}")


def queued_echo_job(server: MotoServer, dynamodb: Any) -> Job:
    """Store a queued echo job as the API would, without going through the API."""
    now = datetime.now(UTC)
    job = Job(
        id=os.urandom(16).hex(),
        owner="bench-user",
        type="echo",
        status=JobStatus.QUEUED,
        payload={"hello": "bench"},
        created_at=now,
        updated_at=now,
    )
    dynamodb.put_item(**build_create(server.table, job, now))
    return job


def sqs_record(server: MotoServer, job: Job, receive_count: int = 1) -> dict[str, Any]:
    """One record as the SQS event source mapping delivers it."""
    body = JobMessage(job_id=job.id, owner=job.owner, job_type=job.type)
    return {
        "messageId": os.urandom(16).hex(),
        "receiptHandle": "bench-" + os.urandom(8).hex(),
        "body": body.model_dump_json(),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(int(time.time() * 1000)),
            "SenderId": "AIDABENCH",
            "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": server.queue_arn,
        "awsRegion": "us-east-1",
    }


def worker_event_factory() -> Callable[[MotoServer], dict[str, Any]]:
    clients: dict[str, Any] = {}

    def make(server: MotoServer) -> dict[str, Any]:
        dynamodb = clients.setdefault(server.endpoint, server.client("dynamodb"))
        return {"Records": [sqs_record(server, queued_echo_job(server, dynamodb))]}

    return make


def check_worker(
    server: MotoServer, event: dict[str, Any], response: dict[str, Any]
) -> None:
    if response != {"batchItemFailures": []}:
        raise RuntimeError(f"expected no batch item failures, got {response!r}")
    job_id = json.loads(event["Records"][0]["body"])["job_id"]
    item = server.client("dynamodb").get_item(
        TableName=server.table, Key={"id": {"S": job_id}}, ConsistentRead=True
    )["Item"]
    if item["status"]["S"] != "succeeded":
        raise RuntimeError(f"the worker did not finish job {job_id}: {item!r}")


def variants() -> list[Variant]:
    """Our two handlers and the naive references, as the template (or bench/naive) names them."""
    api_paths = [SHARED, code_dir("ApiFunction")]
    worker_paths = [SHARED, code_dir("WorkerFunction")]
    return [
        Variant(
            "api",
            "ApiFunction",
            handler_of("ApiFunction"),
            api_paths,
            api_event,
            check_api,
        ),
        Variant(
            "naive api",
            "ApiFunction",
            "naive_api.handler",
            [NAIVE_DIR],
            api_event,
            check_api,
        ),
        Variant(
            "worker",
            "WorkerFunction",
            handler_of("WorkerFunction"),
            worker_paths,
            worker_event_factory(),
            check_worker,
        ),
        Variant(
            "naive worker",
            "WorkerFunction",
            "naive_worker.handler",
            [NAIVE_DIR],
            worker_event_factory(),
            check_worker,
        ),
    ]


def time_python_pass(env: dict[str, str], workdir: str) -> float:
    """`python -c pass` in the same virtualenv: start to exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, cwd=workdir, check=True)
    return time.perf_counter() - started


class Lines:
    """Newline-delimited messages from a pipe, each returned as soon as it is complete."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def next(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def run_once(
    server: MotoServer,
    variant: Variant,
    workdir: str,
    extra_args: tuple[str, ...] = (),
    warm_invocations: int = 0,
) -> tuple[float, dict[str, Any], str, list[float]]:
    """One cold start: (seconds to the first response, the response, the process's stderr, the
    milliseconds of each warm invocation that followed)."""
    event = variant.make_event(server)
    event_path = Path(workdir) / f"{variant.name.replace(' ', '_')}.json"
    event_path.write_text(json.dumps(event))
    env = server.function_env(variant.function, variant.paths)
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                sys.executable,
                *extra_args,
                str(RUNTIME),
                variant.handler,
                str(event_path),
                str(write_fd),
                str(warm_invocations),
            ],
            env=env,
            cwd=workdir,
            pass_fds=(write_fd,),
            stdout=out,
            stderr=err,
        )
        os.close(write_fd)
        try:
            lines = Lines(read_fd)
            line = lines.next()
            elapsed = time.perf_counter() - started
            warm_line = lines.next() if warm_invocations and line else b"[]"
        finally:
            os.close(read_fd)
        process.wait(timeout=60)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if not line:
            out.seek(0)
            raise RuntimeError(
                f"{variant.name} gave no response (exit {process.returncode}):\n"
                f"{stderr[-4000:]}\n{out.read().decode(errors='replace')[-2000:]}"
            )
    response: dict[str, Any] = json.loads(line)
    variant.check(server, event, response)
    warm: list[float] = json.loads(warm_line or b"[]")
    return elapsed, response, stderr, warm


@dataclass
class ColdStart:
    """Medians (seconds) of every variant and of `python -c pass`, from interleaved rounds."""

    runs: int
    python_pass: list[float]
    variants: dict[str, Variant]

    @property
    def pass_median(self) -> float:
        return statistics.median(self.python_pass)

    def median(self, name: str) -> float:
        return self.variants[name].median

    def ratio_to_pass(self, name: str) -> float:
        return self.median(name) / self.pass_median


def measure(server: MotoServer, runs: int = 9, warmup: int = 1) -> ColdStart:
    """Interleaved rounds of every variant and `python -c pass`; the first `warmup` rounds
    (bytecode caches, page cache) are not kept."""
    chosen = variants()
    python_pass: list[float] = []
    env = server.function_env("ApiFunction", [SHARED])
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as workdir:
        for round_no in range(warmup + runs):
            order: list[Variant | None] = [None, *chosen]
            shift = round_no % len(order)
            for variant in order[shift:] + order[:shift]:
                if variant is None:
                    elapsed = time_python_pass(env, workdir)
                    if round_no >= warmup:
                        python_pass.append(elapsed)
                    continue
                elapsed, _, _, _ = run_once(server, variant, workdir)
                if round_no >= warmup:
                    variant.timings.append(elapsed)
    return ColdStart(
        runs=runs,
        python_pass=python_pass,
        variants={variant.name: variant for variant in chosen},
    )


def warm_requests(server: MotoServer, name: str, invocations: int = 50) -> float:
    """Median milliseconds of the warm invocations that follow one cold start of `name` (the API
    variants serve the same GET again: the warm path of a request that reads DynamoDB)."""
    variant = {variant.name: variant for variant in variants()}[name]
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as workdir:
        _, _, _, warm = run_once(server, variant, workdir, warm_invocations=invocations)
    return statistics.median(warm)


def importtime(server: MotoServer, name: str, top: int = 15) -> list[tuple[str, int]]:
    """`python -X importtime` of one variant's cold start: microseconds spent in each top-level
    package's own modules, largest first."""
    variant = {variant.name: variant for variant in variants()}[name]
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as workdir:
        run_once(server, variant, workdir)  # warm the bytecode caches
        _, _, stderr, _ = run_once(server, variant, workdir, ("-X", "importtime"))
    return top_level_imports(stderr)[:top]


def top_level_imports(stderr: str) -> list[tuple[str, int]]:
    """Parse `-X importtime` output: (top-level package, microseconds spent importing its own
    modules), largest first. Self times are summed, so a package is charged for its own module
    bodies, not for what they pull in from other packages."""
    totals: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, _, rest = line.partition(":")
        self_us, _cumulative_us, module = rest.split("|")
        package = module.strip().split(".")[0]
        totals[package] = totals.get(package, 0) + int(self_us)
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)


def main() -> None:
    """`python -m bench.coldstart [importtime VARIANT]`: a quick look without the full bench."""
    with MotoServer() as server:
        if len(sys.argv) > 2 and sys.argv[1] == "importtime":
            for module, micros in importtime(server, sys.argv[2], top=30):
                sys.stdout.write(f"{micros / 1000:9.1f} ms  {module}\n")
            return
        runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
        result = measure(server, runs=runs)
        sys.stdout.write(f"python -c pass: {result.pass_median * 1000:.1f} ms\n")
        for name, variant in result.variants.items():
            sys.stdout.write(
                f"{name}: {variant.median * 1000:.1f} ms = "
                f"{result.ratio_to_pass(name):.1f}x pass\n"
            )


if __name__ == "__main__":
    main()
