"""`make bench` (or `python -m bench`): every figure of issue 4 in one run, each with its target
and the baseline the issue measured; exits 1 when a target is missed.

    python -m bench [--runs N] [--skip-build] [--no-lambda-like] [--json PATH] [--importtime]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import calls, coldstart, concurrency, lambda_like, latency, size, throughput
from bench.inprocess import Functions
from bench.motoserver import MotoServer


@dataclass
class Row:
    figure: str
    value: str
    target: str
    baseline: str
    ok: bool | None  # None: reported, no target

    @property
    def verdict(self) -> str:
        return {True: "ok", False: "MISSED", None: "-"}[self.ok]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _mb(size_bytes: int) -> str:
    return f"{size_bytes / 1_000_000:.1f} MB"


def cold_start_rows(cold: coldstart.ColdStart, warm: dict[str, float]) -> list[Row]:
    api_vs_naive = cold.median("api") / cold.median("naive api")
    worker_ratio = cold.ratio_to_pass("worker")
    return [
        Row(
            "python -c pass (same venv)",
            _ms(cold.pass_median),
            "-",
            "-",
            None,
        ),
        Row(
            "API cold start to first response",
            f"{_ms(cold.median('api'))} = {cold.ratio_to_pass('api'):.1f}x pass "
            f"= {api_vs_naive:.2f}x naive",
            "<= 0.80x naive",
            "naive ~62x pass",
            api_vs_naive <= 0.8,
        ),
        Row(
            "  naive API (FastAPI+Mangum+aioboto3)",
            f"{_ms(cold.median('naive api'))} = {cold.ratio_to_pass('naive api'):.1f}x pass",
            "reference",
            "~62x pass",
            None,
        ),
        Row(
            "Worker cold start to first record",
            f"{_ms(cold.median('worker'))} = {worker_ratio:.1f}x pass",
            "<= 30x pass",
            "plain boto3 worker ~32x (import only)",
            worker_ratio <= 30,
        ),
        Row(
            "  naive worker (boto3, 2 clients)",
            f"{_ms(cold.median('naive worker'))} = "
            f"{cold.ratio_to_pass('naive worker'):.1f}x pass",
            "reference",
            "~32x pass (import only)",
            None,
        ),
        Row(
            "API warm request (GET, DynamoDB read)",
            f"{warm['api']:.1f} ms (naive {warm['naive api']:.1f} ms)",
            "report",
            "-",
            None,
        ),
    ]


def call_rows(counts: calls.CallCounts) -> list[Row]:
    return [
        Row(
            "AWS calls per echo job, submit to success",
            f"{counts.per_job} ({', '.join(counts.submit + counts.dispatch + counts.run)})",
            "<= 4",
            "-",
            counts.per_job <= 4,
        ),
        Row(
            "AWS calls for a duplicate delivery",
            f"{len(counts.duplicate)} ({', '.join(counts.duplicate)})",
            "<= 1",
            "-",
            len(counts.duplicate) <= 1,
        ),
    ]


def batch_rows(batch: concurrency.BatchRun) -> list[Row]:
    return [
        Row(
            f"Batch of {batch.records} http.request jobs, 0.5 s each",
            f"{batch.seconds:.2f} s, {batch.detail}",
            "< 2 s, outcomes exact",
            "5 s one at a time",
            batch.seconds < 2 and batch.exact,
        )
    ]


def latency_rows(result: latency.Latency) -> list[Row]:
    return [
        Row(
            f"Submit -> claim, local stack ({len(result.claim_s)} echo jobs)",
            f"median {_ms(result.claim_median_s)}, max {_ms(max(result.claim_s))}; "
            f"submit -> succeeded median {_ms(result.finish_median_s)}",
            "succeeded <= 1 s",
            "-",
            result.finish_median_s <= 1.0,
        )
    ]


def throughput_rows(result: throughput.Throughput) -> list[Row]:
    return [
        Row(
            "Throughput, echo jobs through both handlers",
            f"{result.jobline_jobs_per_s:.1f} jobs/s = {result.ratio:.2f}x raw "
            f"({result.raw_jobs_per_s:.1f} jobs/s)",
            ">= 0.60x raw",
            "raw boto3 floor, same run",
            result.ratio >= 0.6,
        )
    ]


def size_rows(artifacts: list[size.Artifact]) -> list[Row]:
    rows = []
    for artifact in artifacts:
        duplicated = (
            f", {_mb(artifact.duplicated_bytes)} of it also in its layer"
            if artifact.duplicated_bytes
            else ""
        )
        rows.append(
            Row(
                f"{artifact.function}: unzipped (zipped), with layers",
                f"{_mb(artifact.bytes)} ({_mb(artifact.zipped_bytes)}){duplicated}",
                "< 250 MB (Lambda)",
                "-",
                artifact.bytes < 250_000_000,
            )
        )
    worker = [a for a in artifacts if a.function == "WorkerFunction"]
    rows.append(
        Row(
            "Worker ships no web framework",
            "yes" if worker and not worker[0].ships_web_stack else "NO",
            "yes",
            "-",
            bool(worker) and not worker[0].ships_web_stack,
        )
    )
    off_lock = sorted(
        {name for a in artifacts for name in a.unexpected + a.missing + a.duplicated}
    )
    rows.append(
        Row(
            "Shipped = locked, each distribution once",
            "yes" if not off_lock else f"NO: {', '.join(off_lock)}",
            "yes",
            "-",
            not off_lock,
        )
    )
    without = sorted({line for a in artifacts for line in a.without_bytecode})
    rows.append(
        Row(
            "Every module ships unchecked-hash bytecode",
            "yes" if not without else f"NO: {len(without)} modules, e.g. {without[0]}",
            "yes",
            "-",
            not without,
        )
    )
    return rows


def lambda_like_rows(result: lambda_like.LambdaLike | None) -> list[Row]:
    if result is None:
        return [
            Row(
                "Lambda-like cold starts",
                "skipped (python3.12 or its packages unavailable)",
                "-",
                "-",
                None,
            )
        ]
    naive = result.medians["naive api"]
    rows = [
        Row(
            "Lambda-like: python3.12 -c pass",
            _ms(result.python_pass),
            "-",
            "-",
            None,
        ),
        Row(
            "  naive API, packages as pip installs them",
            f"{_ms(naive)} = {result.ratio('naive api'):.1f}x pass (without .pyc "
            f"{_ms(result.medians['naive api without .pyc'])})",
            "reference",
            "naive ~62x pass",
            None,
        ),
    ]
    for label in result.builds:
        api = result.medians[f"api {label}"]
        rows += [
            Row(
                f"  API, sam build artifact {label}",
                f"{_ms(api)} = {result.ratio(f'api {label}'):.1f}x pass "
                f"= {api / naive:.2f}x naive",
                "report",
                "naive ~62x pass",
                None,
            ),
            Row(
                f"  worker, sam build artifact {label}",
                f"{_ms(result.medians[f'worker {label}'])} = "
                f"{result.ratio(f'worker {label}'):.1f}x pass",
                "report",
                "~32x pass",
                None,
            ),
        ]
    return rows


def print_table(rows: list[Row]) -> None:
    headers = ("figure", "value", "target", "baseline (issue 4)", "")
    widths = [
        max(len(headers[0]), *(len(r.figure) for r in rows)),
        max(len(headers[1]), *(len(r.value) for r in rows)),
        max(len(headers[2]), *(len(r.target) for r in rows)),
        max(len(headers[3]), *(len(r.baseline) for r in rows)),
    ]
    line = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}\n"
    sys.stdout.write(line.format(*headers))
    sys.stdout.write(line.format(*("-" * w for w in widths), "------"))
    for row in rows:
        sys.stdout.write(
            line.format(row.figure, row.value, row.target, row.baseline, row.verdict)
        )


def print_importtime(server: MotoServer) -> None:
    for name in ("api", "worker"):
        sys.stdout.write(f"\n-X importtime, {name}: own import time per package\n")
        for package, micros in coldstart.importtime(server, name, top=12):
            sys.stdout.write(f"  {micros / 1000:7.1f} ms  {package}\n")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=9, help="cold starts per variant")
    parser.add_argument(
        "--skip-build", action="store_true", help="size of the last build"
    )
    parser.add_argument(
        "--no-lambda-like",
        action="store_true",
        help="skip the python3.12 cold starts of the sam build artifacts",
    )
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    parser.add_argument(
        "--importtime", action="store_true", help="print -X importtime per handler"
    )
    args = parser.parse_args()

    started = time.monotonic()
    rows: list[Row] = []
    with MotoServer() as server:
        log(
            f"cold starts: {args.runs} interleaved rounds of 4 handlers + python -c pass"
        )
        cold = coldstart.measure(server, runs=args.runs)
        warm = {
            name: coldstart.warm_requests(server, name) for name in ("api", "naive api")
        }
        rows += cold_start_rows(cold, warm)
        if args.importtime:
            print_importtime(server)
        server.reset()
        functions = Functions(server)
        log("AWS calls per job")
        rows += call_rows(calls.measure(functions))
        log("batch concurrency")
        rows += batch_rows(concurrency.measure(functions))
        log("throughput")
        rows += throughput_rows(throughput.measure(functions))
        log("submit -> claim latency (the local stack: API, outbox, SQS, worker)")
        rows += latency_rows(latency.measure())
        log("size (make build)" if not args.skip_build else "size (last build)")
        rows += size_rows(size.measure(run_build=not args.skip_build))
        if not args.no_lambda_like:
            log("Lambda-like cold starts (python3.12, sam build artifacts)")
            server.reset()
            rows += lambda_like_rows(lambda_like.measure(server))

    sys.stdout.write(f"\nJobline bench ({time.monotonic() - started:.0f} s)\n\n")
    print_table(rows)
    if args.json:
        args.json.write_text(
            json.dumps([row.__dict__ for row in rows], indent=2) + "\n"
        )
    missed = [row.figure.strip() for row in rows if row.ok is False]
    if missed:
        sys.stdout.write(f"\nMISSED: {'; '.join(missed)}\n")
        return 1
    return 0


def log(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
