"""The AWS bill of a million echo jobs, submit to success, from what a run measures.

Rounds of ten echo jobs go through the functions as deployed wiring drives them (`bench.inprocess`:
the API handler, the table's stream into the outbox dispatcher, one SQS batch into the worker).
The run measures, per job:
- the functions' own AWS calls (botocore's `before-call` on their clients: SendMessageBatch and
  its entries, and any read);
- each handler's warm duration (billed rounded up to the millisecond, at the template's
  MemorySize); the API's per request, the worker's per batch of ten, the dispatcher's per stream
  batch;
- every item each write left (the table's stream, NEW_IMAGE, read back in order), from which the
  write request units are computed by DynamoDB's size rules (`item_size`): the table write is the
  larger of the item before and after, rounded up to 1 KB; each global secondary index of the
  template is written when the item enters it (a put), leaves it (a delete), changes its key
  (a delete and a put) or changes a projected attribute (an update), each rounded up to 1 KB of
  the index entry (its keys, the table's key and its projected attributes).
What the event source mappings do is billed by the model, at steady load (full batches): the SQS
mapping's ReceiveMessage and DeleteMessageBatch, one each per batch of ten; the stream mapping
invokes the dispatcher once per batch of up to 100 records (every write of the table is a record:
three per echo job), and its stream reads are free.

Prices: `PRICES` (us-east-1 list prices as known on PRICES_DATE: check before relying on them).
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobline_local.template import load_template

from bench.inprocess import CallCounter, Context, Functions, quiet

PRICES_DATE = "mid-2025"
PRICES = {
    "logs_ingested_gb": 0.50,  # CloudWatch Logs, standard log class, per GB ingested
    "xray_trace": 5.00 / 1e6,  # X-Ray traces recorded (first 100 k a month free)
    "http_api_request": 1.00 / 1e6,  # HTTP API, first 300 M requests a month
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": 0.0000166667,  # x86_64
    "sqs_request": 0.40 / 1e6,  # standard queue; a batch call is one request per 64 KB
    "ddb_wru": 0.625 / 1e6,  # on-demand (halved from 1.25 on 2024-11-01)
    "ddb_rru": 0.125 / 1e6,  # on-demand (halved from 0.25 on 2024-11-01)
    "sfn_standard_transition": 25.00 / 1e6,
    "sfn_express_request": 1.00 / 1e6,
    "sfn_express_gb_s": 0.00001667,
}
"""us-east-1 list prices as known on PRICES_DATE; check before relying on them."""
PRICES_BEFORE_2024_11 = {"ddb_wru": 1.25 / 1e6, "ddb_rru": 0.25 / 1e6}
"""DynamoDB on-demand before its 2024-11-01 price cut (shown for comparison)."""

SQS_BATCH = 10
STREAM_BATCH = 100
ROUNDS = 5
JOBS_PER_ROUND = 10
SFN_STATES = ("store queued", "mark running", "run echo (Lambda)", "store succeeded")
"""The same job as a Step Functions workflow: one state transition per state."""
SFN_EXPRESS_SECONDS = 0.1
"""An Express run of the four states, billed in 100 ms steps (its DynamoDB and Lambda calls
take milliseconds each)."""
SFN_EXPRESS_GB = 0.064
"""The smallest memory an Express execution is billed for (64 MB)."""


# ---------------------------------------------------------------- DynamoDB's size rules
def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value, as DynamoDB counts them."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "B":
        return len(data)
    if kind == "N":
        digits = str(data).lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in data)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in data)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of an item: each attribute's name (UTF-8) plus its value."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def units(size: int, unit: int = 1024) -> int:
    """Request units for `size` bytes (at least one)."""
    return max(1, math.ceil(size / unit))


@dataclass(frozen=True)
class Index:
    """A global secondary index as the template declares it."""

    name: str
    keys: tuple[str, ...]
    projection: str
    include: tuple[str, ...] = ()

    def entry(
        self, item: Mapping[str, Mapping[str, Any]] | None, table_key: tuple[str, ...]
    ) -> dict[str, Mapping[str, Any]] | None:
        """The item's entry in this index (None when a key attribute is missing: not in it)."""
        if item is None or any(key not in item for key in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        kept = set(self.keys) | set(table_key)
        if self.projection == "INCLUDE":
            kept |= set(self.include)
        return {name: value for name, value in item.items() if name in kept}

    def write_units(
        self,
        before: Mapping[str, Mapping[str, Any]] | None,
        after: Mapping[str, Mapping[str, Any]] | None,
        table_key: tuple[str, ...],
    ) -> tuple[int, str]:
        """WRUs this index costs for one table write, and what it did."""
        old, new = self.entry(before, table_key), self.entry(after, table_key)
        if old is None and new is None:
            return 0, "-"
        if old is None:
            assert new is not None
            return units(item_size(new)), "put"
        if new is None:
            return units(item_size(old)), "delete"
        if any(old[key] != new[key] for key in self.keys):
            return units(item_size(old)) + units(item_size(new)), "delete+put"
        if old != new:
            return units(max(item_size(old), item_size(new))), "update"
        return 0, "unchanged"


def table_indexes(
    template: Mapping[str, Any] | None = None,
) -> tuple[tuple[str, ...], list[Index]]:
    """The jobs table's key and its global secondary indexes, from template.yaml."""
    template = template or load_template()
    props = template["Resources"]["JobsTable"]["Properties"]
    table_key = tuple(key["AttributeName"] for key in props["KeySchema"])
    indexes = [
        Index(
            name=gsi["IndexName"],
            keys=tuple(key["AttributeName"] for key in gsi["KeySchema"]),
            projection=gsi["Projection"]["ProjectionType"],
            include=tuple(gsi["Projection"].get("NonKeyAttributes", ())),
        )
        for gsi in props.get("GlobalSecondaryIndexes", [])
    ]
    return table_key, indexes


@dataclass(frozen=True)
class Write:
    """One write of a job's item: its size and what it cost in the table and each index."""

    size: int
    table_units: int
    index_units: dict[str, tuple[int, str]]

    @property
    def total(self) -> int:
        return self.table_units + sum(u for u, _ in self.index_units.values())


def job_writes(
    images: Sequence[Mapping[str, Mapping[str, Any]]],
    table_key: tuple[str, ...],
    indexes: list[Index],
) -> list[Write]:
    """The writes behind a job's successive item images (the first one a new item)."""
    writes = []
    before: Mapping[str, Mapping[str, Any]] | None = None
    for after in images:
        size = max(item_size(after), item_size(before) if before else 0)
        writes.append(
            Write(
                size=item_size(after),
                table_units=units(size),
                index_units={
                    index.name: index.write_units(before, after, table_key)
                    for index in indexes
                },
            )
        )
        before = after
    return writes


# ---------------------------------------------------------------------- the run
@dataclass
class CostRun:
    """What one run measured, per echo job (steady load)."""

    jobs: int
    api_ms: float
    worker_batch_ms: float
    worker_batch: int
    dispatch_ms_per_record: float
    stream_records_per_job: float
    calls_per_job: dict[str, float]
    send_entries_per_call: float
    writes: list[Write]
    """The writes of one echo job, in order (submit, claim, outcome)."""
    memory_gb: float
    index_names: list[str] = field(default_factory=list)
    log_bytes: dict[str, float] = field(default_factory=dict)
    """Bytes of log lines per job, by function (what each function wrote, measured), with the
    HTTP API's access log line and Lambda's platform records (`platform_log_bytes`) modelled."""

    @property
    def log_bytes_per_job(self) -> float:
        return sum(self.log_bytes.values())

    def wru(self, indexes: set[str] | None = None) -> float:
        """WRUs per job in the table and the indexes named (all by default)."""
        return sum(
            w.table_units
            + sum(
                u
                for name, (u, _) in w.index_units.items()
                if indexes is None or name in indexes
            )
            for w in self.writes
        )


class LogTap(io.TextIOBase):
    """stdout during the run: counts the bytes each function writes (`current` names it)."""

    def __init__(self) -> None:
        self.current = "bench"
        self.bytes: dict[str, int] = {}

    def write(self, text: str) -> int:
        self.bytes[self.current] = self.bytes.get(self.current, 0) + len(text.encode())
        return len(text)


def _tapped(tap: LogTap, name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        previous, tap.current = tap.current, name
        try:
            return handler(*args)
        finally:
            tap.current = previous

    return run


ACCESS_LOG_SAMPLE = {
    "$context.requestId": "Ab1cDeFgHiJkLmN=",
    "$context.routeKey": "POST /jobs",
    "$context.status": "202",
    "$context.responseLatency": "41",
    "$context.integrationLatency": "38",
    "$context.integrationStatus": "200",
    "$context.integrationErrorMessage": "-",
    "$context.authorizer.error": "-",
    "$context.authorizer.claims.sub": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "$context.identity.sourceIp": "203.0.113.42",
}
"""The values of a typical `POST /jobs` (a UUID caller, an IPv4 address) the access log's format
is rendered with (it is one JSON line per request, written by API Gateway)."""


def access_log_bytes() -> int:
    """Bytes of the HTTP API's access log line of one request, from the template's format."""
    template = load_template()
    line = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]
    for variable, value in sorted(
        ACCESS_LOG_SAMPLE.items(), key=lambda kv: -len(kv[0])
    ):
        line = line.replace(variable, value)
    return len(" ".join(line.split()).encode()) + 1


PLATFORM_RECORD_BYTES = 330
"""Lambda's records of one invocation at SystemLogLevel INFO (START, END, REPORT as AWS documents
them, about 60 + 45 + 225 bytes as text; JSON records are larger): none at WARN, the template's
default."""


def platform_log_bytes(invocations_per_job: float) -> float:
    """What Lambda's own records add per job at the template's SystemLogLevel."""
    level = load_template()["Parameters"]["SystemLogLevel"]["Default"]
    return 0.0 if level == "WARN" else PLATFORM_RECORD_BYTES * invocations_per_job


XRAY_JOBS_PER_SECOND = 100
"""The steady load X-Ray's sampling is priced at (its default rule records one request a second
and 5 % of the rest, per service)."""


def xray_traces_per_job(
    load: float = XRAY_JOBS_PER_SECOND, batch: int = SQS_BATCH
) -> float:
    """Traces recorded per job under X-Ray's default sampling rule (1 a second, then 5 %), for
    the API (one request per job), the worker (one invocation per batch) and the outbox."""

    def sampled(per_second: float) -> float:
        return min(per_second, 1.0) + 0.05 * max(0.0, per_second - 1.0)

    api = sampled(load)
    worker = sampled(load / batch)
    outbox = sampled(load * 3 / STREAM_BATCH)
    return (api + worker + outbox) / load


def _timed(handler: Callable[..., Any], sink: list[float]) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return handler(*args)
        finally:
            sink.append((time.perf_counter() - started) * 1000)

    return run


def measure(functions: Functions) -> CostRun:
    """ROUNDS rounds of ten echo jobs, submit to success; see the module docstring."""
    api_ms: list[float] = []
    dispatch: list[float] = []
    dispatched_records: list[int] = []
    worker_ms: list[float] = []
    api, outbox, worker = functions.api, functions.outbox.handler, functions.worker
    tap = LogTap()
    functions.api = _tapped(tap, "api", _timed(api, api_ms))
    functions.worker = _tapped(tap, "worker", worker)

    def counted(event: dict[str, Any], context: Any) -> Any:
        dispatched_records.append(len(event.get("Records", [])))
        return outbox(event, context)

    functions.outbox.handler = _tapped(tap, "outbox", _timed(counted, dispatch))
    counter = CallCounter(functions.clients())
    job_ids: list[str] = []
    try:
        with quiet():
            functions.dispatch()  # what earlier phases left on the stream
        with contextlib.redirect_stdout(tap):
            counter.take()
            dispatch.clear()
            dispatched_records.clear()
            tap.bytes.clear()
            for _ in range(ROUNDS):
                ids = [
                    functions.submit({"type": "echo", "payload": {"n": n}})["id"]
                    for n in range(JOBS_PER_ROUND)
                ]
                functions.dispatch()
                messages = functions.receive(JOBS_PER_ROUND)
                started = time.perf_counter()
                response = functions.worker(
                    functions.sqs_event(messages), Context("WorkerFunction", 120)
                )
                worker_ms.append((time.perf_counter() - started) * 1000)
                functions.delete(messages)
                if response != {"batchItemFailures": []}:
                    raise RuntimeError(f"the worker returned records: {response!r}")
                job_ids += ids
            functions.dispatch()  # the claims' and outcomes' records
            calls = counter.take()
    finally:
        counter.close()
        functions.api, functions.outbox.handler, functions.worker = api, outbox, worker
    jobs = len(job_ids)
    images = _stream_images(functions, set(job_ids))
    table_key, indexes = table_indexes()
    per_job = [job_writes(images[job_id], table_key, indexes) for job_id in job_ids]
    if any(len(w) != len(per_job[0]) for w in per_job):
        raise RuntimeError("echo jobs wrote different numbers of times")
    typical = per_job[len(per_job) // 2]
    memory_mb = load_template()["Globals"]["Function"]["MemorySize"]
    operations = [call.rpartition(".")[2] for call in calls]  # "sqs.SendMessageBatch"
    sends = operations.count("SendMessageBatch")
    counts: dict[str, float] = {}
    for name in operations:
        counts[name] = counts.get(name, 0) + 1 / jobs
    return CostRun(
        jobs=jobs,
        api_ms=statistics.median(api_ms[1:]),
        worker_batch_ms=statistics.median(worker_ms),
        worker_batch=JOBS_PER_ROUND,
        dispatch_ms_per_record=sum(dispatch) / max(1, sum(dispatched_records)),
        stream_records_per_job=sum(dispatched_records) / jobs,
        calls_per_job=counts,
        send_entries_per_call=jobs / max(1, sends),
        writes=typical,
        memory_gb=memory_mb / 1024,
        index_names=[index.name for index in indexes],
        log_bytes={
            **{
                name: tap.bytes.get(name, 0) / jobs
                for name in ("api", "worker", "outbox")
            },
            "http api access log": float(access_log_bytes()),
            "lambda platform records": platform_log_bytes(
                1 + 1 / JOBS_PER_ROUND + sum(dispatched_records) / jobs / STREAM_BATCH
            ),
        },
    )


def _stream_images(
    functions: Functions, job_ids: set[str]
) -> dict[str, list[Mapping[str, Mapping[str, Any]]]]:
    """Every image the table's stream holds for `job_ids`, in order."""
    streams = functions.server.client("dynamodbstreams")
    assert functions.server.provisioned is not None
    arn = functions.server.provisioned.stream_arns["JobsTable"]
    images: dict[str, list[Mapping[str, Mapping[str, Any]]]] = {j: [] for j in job_ids}
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in response.get("Records", []):
                image = record["dynamodb"].get("NewImage")
                job_id = record["dynamodb"]["Keys"]["id"]["S"]
                if image and job_id in job_ids:
                    images[job_id].append(image)
            if not response.get("Records"):
                break
            iterator = response.get("NextShardIterator")
    return images


# ---------------------------------------------------------------------- the bill
@dataclass(frozen=True)
class Line:
    """One line of the bill: what, how many per job, the price each, dollars per million jobs."""

    service: str
    item: str
    per_job: float
    unit_price: float

    @property
    def per_million(self) -> float:
        return self.per_job * self.unit_price * 1e6


def _billed_gb_s(ms: float, gb: float) -> float:
    return math.ceil(ms) / 1000 * gb


def bill(
    run: CostRun,
    via: str = "http",
    indexes: set[str] | None = None,
    prices: Mapping[str, float] = PRICES,
) -> list[Line]:
    """Dollars per million echo jobs, line by line: submitted over HTTP (`via="http"`) or
    through the ingest queue (`via="ingest"`), with the template's indexes or only `indexes`."""
    p = {**PRICES, **prices}
    gb = run.memory_gb
    records = run.stream_records_per_job
    lines = []
    if via == "http":
        lines += [
            Line(
                "API Gateway", "HTTP API request (POST /jobs)", 1, p["http_api_request"]
            ),
            Line("Lambda", "API invocation", 1, p["lambda_request"]),
            Line(
                "Lambda",
                f"API GB-s ({math.ceil(run.api_ms)} ms billed x {gb:.1f} GB)",
                _billed_gb_s(run.api_ms, gb),
                p["lambda_gb_s"],
            ),
        ]
    else:
        lines += [
            Line(
                "SQS",
                "submitter's SendMessageBatch (10 a call)",
                1 / SQS_BATCH,
                p["sqs_request"],
            ),
            Line(
                "SQS",
                "ingest mapping: ReceiveMessage + DeleteMessageBatch",
                2 / SQS_BATCH,
                p["sqs_request"],
            ),
            Line(
                "Lambda",
                f"ingest invocation (batches of {SQS_BATCH})",
                1 / SQS_BATCH,
                p["lambda_request"],
            ),
            Line(
                "Lambda",
                f"ingest GB-s (~ the API's {math.ceil(run.api_ms)} ms per job)",
                _billed_gb_s(run.api_ms, gb),
                p["lambda_gb_s"],
            ),
        ]
    per_batch = STREAM_BATCH / records
    lines += [
        Line(
            "Lambda",
            f"outbox invocation ({records:.0f} stream records a job, {STREAM_BATCH} a batch)",
            1 / per_batch,
            p["lambda_request"],
        ),
        Line(
            "Lambda",
            f"outbox GB-s ({run.dispatch_ms_per_record:.2f} ms a record)",
            records * run.dispatch_ms_per_record / 1000 * gb,
            p["lambda_gb_s"],
        ),
        Line(
            "SQS",
            f"outbox SendMessageBatch ({run.send_entries_per_call:.0f} messages a call)",
            run.calls_per_job.get("SendMessageBatch", 0),
            p["sqs_request"],
        ),
        Line(
            "SQS",
            f"jobs mapping: ReceiveMessage + DeleteMessageBatch ({SQS_BATCH} a batch)",
            2 / SQS_BATCH,
            p["sqs_request"],
        ),
        Line(
            "Lambda",
            f"worker invocation ({run.worker_batch} records a batch)",
            1 / run.worker_batch,
            p["lambda_request"],
        ),
        Line(
            "Lambda",
            f"worker GB-s ({math.ceil(run.worker_batch_ms)} ms a batch of {run.worker_batch})",
            _billed_gb_s(run.worker_batch_ms, gb) / run.worker_batch,
            p["lambda_gb_s"],
        ),
    ]
    names = ["submit", "claim", "outcome"] + [f"write {i}" for i in range(4, 10)]
    for name, write in zip(names, run.writes, strict=False):
        lines.append(
            Line(
                "DynamoDB",
                f"{name}: table ({write.size} B item)",
                write.table_units,
                p["ddb_wru"],
            )
        )
        for index, (wru, what) in write.index_units.items():
            if wru and (indexes is None or index in indexes):
                lines.append(
                    Line("DynamoDB", f"{name}: {index} ({what})", wru, p["ddb_wru"])
                )
    reads = sum(
        n
        for call, n in run.calls_per_job.items()
        if call in ("GetItem", "Query", "BatchGetItem")
    )
    if reads:
        lines.append(
            Line("DynamoDB", "reads (1 RRU each, items < 4 KB)", reads, p["ddb_rru"])
        )
    for source, size in run.log_bytes.items():
        if via == "ingest" and source in ("api", "http api access log"):
            continue  # (the ingest function's lines are about the API's: counted below)
        lines.append(
            Line(
                "Logs",
                f"{source} ({size:.0f} B a job)",
                size / 1e9,
                p["logs_ingested_gb"],
            )
        )
    if via == "ingest":
        size = run.log_bytes.get("api", 0.0)
        lines.append(
            Line(
                "Logs",
                f"ingest function (~ the API's {size:.0f} B)",
                size / 1e9,
                p["logs_ingested_gb"],
            )
        )
    return lines


def xray(prices: Mapping[str, float] = PRICES) -> Line:
    """X-Ray (the template traces every function): traces recorded per job under the default
    sampling rule at XRAY_JOBS_PER_SECOND, priced apart from the all-in target."""
    p = {**PRICES, **prices}
    return Line(
        "X-Ray",
        f"traces recorded at {XRAY_JOBS_PER_SECOND} jobs/s (default sampling)",
        xray_traces_per_job(),
        p["xray_trace"],
    )


def total(lines: list[Line]) -> float:
    return sum(line.per_million for line in lines)


def step_functions(
    run: CostRun, prices: Mapping[str, float] = PRICES
) -> dict[str, float]:
    """The same echo job as a workflow started by the HTTP API (its StartExecution integration,
    no API function): the HTTP request, the orchestration, one Lambda invocation running echo
    (at the API's duration) and the same three writes with the same indexes."""
    p = {**PRICES, **prices}
    common = (
        p["http_api_request"]
        + p["lambda_request"]
        + _billed_gb_s(run.api_ms, run.memory_gb) * p["lambda_gb_s"]
        + run.wru() * p["ddb_wru"]
    )
    standard = len(SFN_STATES) * p["sfn_standard_transition"]
    express = (
        p["sfn_express_request"]
        + SFN_EXPRESS_SECONDS * SFN_EXPRESS_GB * p["sfn_express_gb_s"]
    )
    return {
        "standard": (common + standard) * 1e6,
        "standard orchestration": standard * 1e6,
        "express": (common + express) * 1e6,
        "express orchestration": express * 1e6,
    }
