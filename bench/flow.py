"""What flow control costs per job in DynamoDB writes (issue 18), measured on the template's own
jobs table and control table (on the bench's moto server): every write request the service
makes is metered as DynamoDB bills it on demand (write units of the larger of the item before
and after, each 1 KB or part; a write whose condition failed still costs its units; the jobs
table's index entries as `bench.cost.Index` counts them).

Four kinds of job, each submitted and run to success by the service's own use cases:
- `off`: a deployment without flow control (no control table): the baseline;
- `free`: a type that declares no limit (flow control is on in the deployment): the same writes
  as without flow control, and none in the control table (the same handler as the others);
- `keyed`: one uncontended concurrency key (an acquire and a release on top);
- `parked`: a job that meets a full key, is parked, woken by the holder's release, and then runs:
  the writes of the pair less those of one keyed job.

    python -m bench.flow
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from jobline.aws.control_table import DynamoFlowStore
from jobline.aws.repository import DynamoJobRepository
from jobline.backoff import Backoff
from jobline.bootstrap import ServiceOptions, build_service
from jobline.flow import Concurrency
from jobline.lanes import Lanes
from jobline.models import Delivery, Job, JobMessage, JobStatus, SubmitRequest
from jobline.registry import JobContext, JobType, JobTypeRegistry
from jobline.service import JobService, RunOutcome
from jobline_local.template import load_template
from pydantic import BaseModel, ConfigDict

from bench.cost import PRICES, Index, item_size, table_indexes, units
from bench.inprocess import quiet
from bench.motoserver import MotoServer

JOBS = 20
"""Jobs of each kind measured (every job of a kind writes the same: the figure is their mean)."""
WRITES = ("put_item", "update_item", "delete_item")


class MeteredDynamoDB:
    """A DynamoDB client that meters the write units of every write it makes, per table."""

    def __init__(self, client: Any, keys: Mapping[str, tuple[str, ...]]) -> None:
        self._client = client
        self._keys = keys
        self._indexes: dict[str, tuple[tuple[str, ...], list[Index]]] = {}
        self.units: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()

    def index(self, table: str, key: tuple[str, ...], indexes: list[Index]) -> None:
        """Meter `table`'s index entries too."""
        self._indexes[table] = (key, indexes)

    def take(self) -> tuple[Counter[str], Counter[str]]:
        """The units and requests metered since the last take, by table."""
        units_, requests = self.units, self.requests
        self.units, self.requests = Counter(), Counter()
        return units_, requests

    def _item(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._client.get_item(
            TableName=table, Key=key, ConsistentRead=True
        ).get("Item")
        return found

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in WRITES:
            if name in ("get_item", "query", "scan", "batch_get_item"):
                return self._counted(name, method)
            return method

        def metered(**request: Any) -> Any:
            table = request["TableName"]
            key = request.get("Key") or {
                part: request["Item"][part] for part in self._keys[table]
            }
            before = self._item(table, key)
            try:
                return method(**request)
            finally:
                after = self._item(table, key)
                size = max(
                    item_size(before) if before else 0,
                    item_size(after) if after else 0,
                )
                self.units[table] += units(size)
                self.requests[f"{table} {name}"] += 1
                if table in self._indexes:
                    table_key, indexes = self._indexes[table]
                    for index in indexes:
                        self.units[table] += index.write_units(
                            before, after, table_key
                        )[0]

        return metered

    def _counted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(**request: Any) -> Any:
            table = request.get("TableName", "")
            self.requests[f"{table} {name}"] += 1
            return method(**request)

        return counted


class Slot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 0


@dataclass(frozen=True)
class FlowCost:
    """Write units per job, by kind: (jobs table with its indexes, control table)."""

    per_job: dict[str, tuple[float, float]]
    requests: dict[str, dict[str, float]]

    def total(self, kind: str) -> float:
        return sum(self.per_job[kind])

    def dollars_per_million(self, kind: str) -> float:
        return self.total(kind) * PRICES["ddb_wru"] * 1e6


class NoQueue:
    """The worker's queue, unused here (the outbox sends; nothing is postponed)."""

    def send_batch(
        self, messages: Sequence[tuple[JobMessage, int]], lane: str = "default"
    ) -> list[bool]:
        raise RuntimeError("the bench sends no message")

    def postpone(
        self, receipt_handle: str, seconds: int, queue: str | None = None
    ) -> None:
        raise RuntimeError("the bench postpones nothing")


def delivery(job: Job) -> Delivery:
    message = JobMessage(job_id=job.id, owner=job.owner, job_type=job.type, run=job.run)
    return Delivery(
        message=message,
        request_id=uuid.uuid4().hex,
        lease_until=datetime.now(UTC) + timedelta(minutes=2),
        deadline=time.monotonic() + 60,
    )


def measure(server: MotoServer) -> FlowCost:
    """Meter JOBS jobs of each kind (see the module docstring), the service's logs muted."""
    with quiet():
        return _measure(server)


def _measure(server: MotoServer) -> FlowCost:
    assert server.provisioned is not None
    tables = server.provisioned.tables
    jobs_table, control_table = tables["JobsTable"], tables["ControlTable"]
    key, indexes = table_indexes(load_template())
    raw = server.client("dynamodb")
    client = MeteredDynamoDB(raw, {jobs_table: key, control_table: ("pk", "sk")})
    client.index(jobs_table, key, indexes)
    nested: list[Callable[[], object]] = []

    def hold(payload: Slot, context: JobContext) -> dict[str, int]:
        while nested:
            nested.pop(0)()
        return {"n": payload.n}

    def limited(name: str, limit: int) -> JobType[Slot]:
        return JobType(
            name=name,
            description="bench",
            input_model=Slot,
            handler=hold,
            concurrency=(Concurrency(name=name, key="{owner}", limit=limit),),
        )

    def deployment(flow_store: DynamoFlowStore | None) -> JobService:
        return build_service(
            options=options,
            repository=DynamoJobRepository(client, jobs_table),  # type: ignore[arg-type]
            queue=NoQueue(),
            registry=registry,
            rng=random.Random(0),
            flow_store=flow_store,
        )

    options = ServiceOptions(
        cursor_keys=None,
        retention=timedelta(days=7),
        max_payload_bytes=65536,
        max_result_bytes=65536,
        backoff=Backoff(base_s=1, cap_s=2),
        progress_interval_s=5,
        lanes=Lanes(worker_timeout_s=120, long_worker_timeout_s=None, margin_s=5),
        flow_refresh_s=3600,
    )
    registry = JobTypeRegistry(
        [
            replace(limited("free", 1), concurrency=()),
            limited("keyed", 10_000),
            limited("parked", 1),
        ]
    )
    service = deployment(DynamoFlowStore(client, control_table))  # type: ignore[arg-type]
    without = deployment(None)

    def run_to_success(job: Job) -> None:
        if service.run(delivery(job)) is not RunOutcome.DONE:
            raise RuntimeError(f"job {job.id} was not done")

    def check(*jobs: Job) -> None:
        """Every job succeeded (read after its kind was recorded: not metered)."""
        for job in jobs:
            status = service.get(job.owner, job.id).status
            if status is not JobStatus.SUCCEEDED:
                raise RuntimeError(f"job {job.id} ended {status.value}")
        client.take()

    if service.admission is not None:
        service.admission.settings()  # read once, as a warm worker has
    client.take()
    per_job: dict[str, tuple[float, float]] = {}
    requests: dict[str, dict[str, float]] = {}

    def record(kind: str, jobs: int) -> None:
        metered, calls = client.take()
        per_job[kind] = (metered[jobs_table] / jobs, metered[control_table] / jobs)
        requests[kind] = {
            call.replace(jobs_table, "jobs").replace(control_table, "control"): n / jobs
            for call, n in sorted(calls.items())
        }

    off = [
        without.submit("bench", SubmitRequest(type="free", payload={"n": n})).job
        for n in range(JOBS)
    ]
    for job in off:
        if without.run(delivery(job)) is not RunOutcome.DONE:
            raise RuntimeError(f"job {job.id} was not done")
    record("off", JOBS)
    check(*off)

    free = [
        service.submit("bench", SubmitRequest(type="free", payload={"n": n})).job
        for n in range(JOBS)
    ]
    for job in free:
        run_to_success(job)
    record("free", JOBS)
    check(*free)

    keyed = [
        service.submit("bench", SubmitRequest(type="keyed", payload={"n": n})).job
        for n in range(JOBS)
    ]
    for job in keyed:
        run_to_success(job)
    record("keyed", JOBS)
    check(*keyed)

    pairs: list[tuple[Job, Job]] = []
    for _ in range(JOBS):
        holder = service.submit("bench", SubmitRequest(type="parked")).job
        waiter = service.submit("bench", SubmitRequest(type="parked")).job
        nested.append(partial(service.run, delivery(waiter)))
        run_to_success(holder)
        # parked while the holder ran, woken by its release (read past the meter)
        woken = raw.get_item(
            TableName=jobs_table, Key={"id": {"S": waiter.id}}, ConsistentRead=True
        )["Item"]
        if (
            "blocked_on" in woken
            or "dispatch" not in woken
            or woken["attempts"] != {"N": "0"}
        ):
            raise RuntimeError(f"job {waiter.id} was not parked and woken")
        run_to_success(waiter)
        pairs.append((holder, waiter))
    record("pair", JOBS)
    check(*(job for pair in pairs for job in pair))
    pair, one = per_job.pop("pair"), per_job["keyed"]
    per_job["parked"] = (pair[0] - one[0], pair[1] - one[1])
    requests["parked"] = requests.pop("pair")
    return FlowCost(per_job=per_job, requests=requests)


def rows(cost: FlowCost) -> list[tuple[str, str, str, bool | None]]:
    """(figure, value, target, met) for `make bench`'s table."""
    free, keyed = cost.total("free"), cost.total("keyed")
    wru = PRICES["ddb_wru"] * 1e6

    def shown(kind: str) -> str:
        jobs_table, control = cost.per_job[kind]
        return (
            f"{cost.total(kind):.1f} WRU ({jobs_table:.1f} jobs table + {control:.1f} "
            f"control table), ${cost.total(kind) * wru:.2f} per million"
        )

    return [
        (
            "flow control: WRU per job of a type without limits",
            shown("free"),
            f"= flow control off ({cost.total('off'):.1f} WRU)",
            cost.per_job["free"] == cost.per_job["off"],
        ),
        (
            "flow control: WRU per job with one uncontended key",
            shown("keyed"),
            f"<= {free:.0f} + 2 (the free job's + 2)",
            keyed <= free + 2,
        ),
        (
            "flow control: WRU per parked-and-woken job (beyond a keyed one)",
            shown("parked"),
            "reported",
            None,
        ),
    ]


def main() -> int:
    with MotoServer(prefix="jobline-bench-flow") as server:
        cost = measure(server)
    for figure, value, target, met in rows(cost):
        verdict = {True: "ok", False: "MISSED", None: "-"}[met]
        sys.stdout.write(f"{figure:<66} {value:<70} {target:<30} {verdict}\n")
    for kind, calls in cost.requests.items():
        shown = ", ".join(f"{call} {n:.2f}" for call, n in calls.items())
        sys.stdout.write(f"  {kind}: requests per job: {shown}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
