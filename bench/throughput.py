"""Throughput: echo jobs submitted through the API handler and run by the worker handler, against
the floor of the same AWS calls issued directly with boto3 against the same moto server.

Both sides work in rounds of ten jobs (submit ten, receive them as one batch, run it, delete it),
so the queue never holds more than ten messages; the worker and the floor both run a batch's
records on ten threads. Blocks of rounds alternate between the two sides and each side's rate
is the median over its blocks.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobline.aws.items import job_to_item
from jobline.models import Job, JobStatus

from bench.inprocess import OWNER, Functions, quiet

BATCH = 10
PAYLOAD = {"message": "hello from the bench", "n": 3}


@dataclass(frozen=True)
class Throughput:
    jobline_jobs_per_s: float
    raw_jobs_per_s: float
    jobs: int

    @property
    def ratio(self) -> float:
        return self.jobline_jobs_per_s / self.raw_jobs_per_s


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _raw_store_and_enqueue(functions: Functions) -> None:
    now = datetime.now(UTC)
    job = Job(
        id=uuid.uuid4().hex,
        owner=OWNER,
        type="echo",
        status=JobStatus.QUEUED,
        payload=PAYLOAD,
        created_at=now,
        updated_at=now,
    )
    functions.dynamodb.put_item(
        TableName=functions.server.table,
        Item=job_to_item(job),
        ConditionExpression="attribute_not_exists(id)",
    )
    functions.sqs.send_message(
        QueueUrl=functions.server.queue_url,
        MessageBody=json.dumps({"job_id": job.id, "owner": OWNER, "job_type": "echo"}),
    )


def _raw_claim_and_finish(functions: Functions, message: dict[str, Any]) -> None:
    job_id = json.loads(message["Body"])["job_id"]
    table = functions.server.table
    claimed = functions.dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": job_id}},
        UpdateExpression="SET #s = :running, owner_status = :os, started_at = :now, "
        "updated_at = :now ADD attempts :one",
        ConditionExpression="#o = :owner AND #s = :queued",
        ExpressionAttributeNames={"#s": "status", "#o": "owner"},
        ExpressionAttributeValues={
            ":running": {"S": "running"},
            ":queued": {"S": "queued"},
            ":owner": {"S": OWNER},
            ":os": {"S": f"{OWNER}#running"},
            ":now": {"S": _now()},
            ":one": {"N": "1"},
        },
        ReturnValues="ALL_NEW",
    )["Attributes"]
    functions.dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": job_id}},
        UpdateExpression="SET #s = :succeeded, owner_status = :os, #r = :result, "
        "updated_at = :now, finished_at = :now, expires_at = :exp",
        ConditionExpression="#o = :owner AND #s = :running AND attempts = :n",
        ExpressionAttributeNames={"#s": "status", "#o": "owner", "#r": "result"},
        ExpressionAttributeValues={
            ":succeeded": {"S": "succeeded"},
            ":running": {"S": "running"},
            ":owner": {"S": OWNER},
            ":os": {"S": f"{OWNER}#succeeded"},
            ":result": claimed["payload"],
            ":now": {"S": _now()},
            ":exp": {"N": str(int(time.time()) + 30 * 86400)},
            ":n": claimed["attempts"],
        },
    )


def raw_round(functions: Functions, pool: ThreadPoolExecutor) -> None:
    for _ in range(BATCH):
        _raw_store_and_enqueue(functions)
    messages = functions.receive(BATCH)
    list(pool.map(lambda m: _raw_claim_and_finish(functions, m), messages))
    functions.delete(messages)


def jobline_round(functions: Functions) -> None:
    for _ in range(BATCH):
        functions.submit({"type": "echo", "payload": PAYLOAD})
    functions.dispatch()
    messages = functions.receive(BATCH)
    response = functions.run_batch(messages)
    if response != {"batchItemFailures": []}:
        raise RuntimeError(f"the worker returned records: {response!r}")


def measure(functions: Functions, blocks: int = 5, rounds: int = 5) -> Throughput:
    """`blocks` alternating blocks of `rounds` rounds per side; jobs per second, median."""
    rates: dict[str, list[float]] = {"raw": [], "jobline": []}
    with ThreadPoolExecutor(max_workers=BATCH) as pool, quiet():
        raw_round(functions, pool)  # connections and lazy paths warm on both sides
        jobline_round(functions)
        for block in range(blocks):
            for side in ("raw", "jobline") if block % 2 == 0 else ("jobline", "raw"):
                started = time.perf_counter()
                for _ in range(rounds):
                    if side == "raw":
                        raw_round(functions, pool)
                    else:
                        jobline_round(functions)
                rates[side].append(rounds * BATCH / (time.perf_counter() - started))
    return Throughput(
        jobline_jobs_per_s=statistics.median(rates["jobline"]),
        raw_jobs_per_s=statistics.median(rates["raw"]),
        jobs=blocks * rounds * BATCH,
    )
