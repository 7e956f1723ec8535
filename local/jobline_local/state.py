"""What `make run` keeps across a restart: a JSON file written when the stack stops cleanly and
read back when it starts (`LocalSettings.state_file`; `fresh` discards it).

Kept: every item of the template's tables, the messages no table recreates (what is visible on
the ingest queue, its dead-letter queue and the jobs dead-letter queue at the stop), and the jobs'
payloads and results in the data bucket (base64 in the file: a job with a 50 MiB result makes it
67 MB; uploads no submit named are not kept).

Rebuilt rather than kept, so that the restored table and queues agree:
- the jobs queue. Restored items go back into a new table, whose stream hands each write to the
  outbox like any other write: every job left `queued` with its `dispatch` mark gets its message
  again, delayed until it is due, from the one place that sends job messages
  (`jobline.dispatch`). A job `running` at the stop had its message in flight, which SQS would
  deliver again after its visibility timeout: the restore sends it again (`reclaim_messages`),
  and the worker takes the job over once the lease of the stopped invocation has ended;
- the outbox's on-failure queues: their messages name positions in a stream that is gone, and
  the restored writes are streamed again anyway.

Not kept: messages in flight or delayed on the kept queues at the stop (an ingest batch waiting
to be retried), receive counts (a restored message starts again at 0), the stream's history. A
job whose message was dead-lettered but not yet recorded may be both dispatched and recorded
dead-lettered after the restore; whichever conditional write comes first wins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from jobline.aws.items import item_to_job
from jobline.aws.queue import SqsJobQueue
from jobline.logging import get_logger
from jobline.models import JobMessage, JobStatus
from pydantic import ValidationError

from jobline_local.snapshot import MAX_RECEIVE, Snapshot, StateError, load, save, take
from jobline_local.template import Provisioned, resources_of_type, stream_triggers

log = get_logger(__name__)

BATCH_WRITE = 25
"""BatchWriteItem takes at most 25 items."""
UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True)
class Resources:
    """Where the state lives while the stack runs: clients of its endpoint, the template and what
    was provisioned from it, and the logical ids of the jobs table and the jobs queue."""

    dynamodb: Any
    sqs: Any
    template: dict[str, Any]
    provisioned: Provisioned
    jobs_table: str
    jobs_queue: str
    s3: Any = None
    """The data bucket's client (None: no objects are kept or restored)."""


@dataclass(frozen=True)
class StateSummary:
    """What a snapshot holds, for the lines a person reads at start and stop."""

    jobs: dict[str, int]
    """Jobs by status."""
    messages: int
    saved_at: str = ""

    @property
    def job_count(self) -> int:
        return sum(self.jobs.values())

    @property
    def unfinished(self) -> int:
        """Jobs that will run after a restore (queued or running at the stop)."""
        return sum(self.jobs.get(status.value, 0) for status in UNFINISHED)

    def describe(self) -> str:
        """`12 jobs (3 queued, 1 running, 8 succeeded) and 2 messages`."""
        statuses = ", ".join(
            f"{count} {status}" for status, count in sorted(self.jobs.items())
        )
        jobs = f"{self.job_count} job{'s' * (self.job_count != 1)}"
        messages = f"{self.messages} message{'s' * (self.messages != 1)}"
        return f"{jobs}{f' ({statuses})' if statuses else ''} and {messages}"


def summarize(snapshot: Snapshot, jobs_table: str) -> StateSummary:
    """Counts of a snapshot: the jobs table's items by status, every kept message."""
    statuses = Counter(
        item.get("status", {}).get("S", "?")
        for item in snapshot.tables.get(jobs_table, [])
    )
    return StateSummary(
        jobs=dict(statuses),
        messages=sum(len(messages) for messages in snapshot.queues.values()),
        saved_at=snapshot.saved_at,
    )


LANE_QUEUE_VARIABLES = {
    "default": "JOBLINE_QUEUE_URL",
    "long": "JOBLINE_LONG_QUEUE_URL",
}
"""The functions' settings naming each lane's jobs queue (`jobline.lanes`)."""


def lane_queues(template: dict[str, Any]) -> dict[str, str]:
    """Each lane's jobs queue (logical id), as the template's Globals name them: the outbox fills
    them from the table, so a snapshot keeps none of their messages."""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    return {
        lane: variables[name]["Ref"]
        for lane, name in LANE_QUEUE_VARIABLES.items()
        if isinstance(variables.get(name), dict)
    }


def kept_queues(template: dict[str, Any], jobs_queue: str) -> list[str]:
    """The queues whose messages a snapshot keeps, sources before their dead-letter queues: every
    queue but the jobs queue and the outbox's on-failure queues (and their dead-letter queues)."""
    queues = resources_of_type(template, "AWS::SQS::Queue")

    def dead_letter_queue(name: str) -> str | None:
        target = queues[name]["Properties"].get("RedrivePolicy", {})
        arn = target.get("deadLetterTargetArn")
        return arn["Fn::GetAtt"][0] if isinstance(arn, dict) else None

    rebuilt = {jobs_queue, *lane_queues(template).values()}
    for trigger in stream_triggers(template):
        if trigger.on_failure_queue is not None:
            rebuilt.add(trigger.on_failure_queue)
            rebuilt.add(dead_letter_queue(trigger.on_failure_queue) or "")
    kept = [name for name in queues if name not in rebuilt]
    return sorted(kept, key=lambda name: dead_letter_queue(name) is None)


# -------------------------------------------------------------------------- restoring it
def _put(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), BATCH_WRITE):
        pending: dict[str, Any] = {
            table: [
                {"PutRequest": {"Item": item}}
                for item in items[start : start + BATCH_WRITE]
            ]
        }
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get(
                "UnprocessedItems", {}
            )


def reclaim_messages(items: Iterable[dict[str, Any]]) -> list[JobMessage]:
    """The messages of the jobs `running` at the stop: the deliveries SQS still held in flight."""
    return [message for message, _ in reclaims_by_lane(items)]


def reclaims_by_lane(items: Iterable[dict[str, Any]]) -> list[tuple[JobMessage, str]]:
    """`reclaim_messages`, each with the lane whose queue it goes to (`jobline.lanes`)."""
    messages = []
    for item in items:
        if item.get("status", {}).get("S") != JobStatus.RUNNING.value:
            continue
        try:
            job = item_to_job(item)
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            log.error(
                "local.state_unreadable_job",
                job_id=item.get("id", {}).get("S"),
                error_type=type(exc).__name__,
            )
            continue
        messages.append(
            (
                JobMessage(
                    job_id=job.id,
                    owner=job.owner,
                    job_type=job.type,
                    correlation_id=job.correlation_id,
                    run=job.run,
                ),
                job.lane,
            )
        )
    return messages


def restore(snapshot: Snapshot, resources: Resources) -> None:
    """Put the snapshot's items and messages back, and send the messages of the jobs that were
    running. Tables and queues the template no longer has are skipped (logged)."""
    provisioned = resources.provisioned
    for logical_id, items in snapshot.tables.items():
        if logical_id not in provisioned.tables:
            log.warning("local.state_table_skipped", table=logical_id, items=len(items))
            continue
        _put(resources.dynamodb, provisioned.tables[logical_id], items)
    for logical_id, messages in snapshot.queues.items():
        if logical_id not in provisioned.queue_urls:
            log.warning(
                "local.state_queue_skipped", queue=logical_id, messages=len(messages)
            )
            continue
        for message in messages:
            resources.sqs.send_message(
                QueueUrl=provisioned.queue_urls[logical_id], **message
            )
    for logical_id, objects in snapshot.objects.items():
        bucket = provisioned.buckets.get(logical_id)
        if bucket is None or resources.s3 is None:
            log.warning(
                "local.state_bucket_skipped", bucket=logical_id, objects=len(objects)
            )
            continue
        for key, data in objects.items():
            resources.s3.put_object(
                Bucket=bucket, Key=key, Body=data, ContentType="application/json"
            )
    reclaims = reclaims_by_lane(snapshot.tables.get(resources.jobs_table, []))
    queue = SqsJobQueue(
        resources.sqs,
        provisioned.queue_urls[resources.jobs_queue],
        {
            lane: provisioned.queue_urls[logical_id]
            for lane, logical_id in lane_queues(resources.template).items()
        },
    )
    for lane in sorted({lane for _, lane in reclaims}):
        of_lane = [message for message, its_lane in reclaims if its_lane == lane]
        for start in range(0, len(of_lane), MAX_RECEIVE):
            chunk = of_lane[start : start + MAX_RECEIVE]
            if not all(queue.send_batch([(message, 0) for message in chunk], lane)):
                raise StateError("a jobs queue refused a running job's message")


def restore_saved(path: Path, resources: Resources) -> StateSummary | None:
    """Restore what the last clean stop saved at `path`; what it held, or None (nothing saved).
    Raises StateError when the file cannot be read."""
    snapshot = load(path)
    if snapshot is None:
        return None
    try:
        restore(snapshot, resources)
    except (BotoCoreError, ClientError) as exc:
        raise StateError(f"cannot restore the saved state {path}: {exc}") from exc
    summary = summarize(snapshot, resources.jobs_table)
    log.info(
        "local.state_restored",
        path=str(path),
        jobs=summary.jobs,
        messages=summary.messages,
        saved_at=snapshot.saved_at,
    )
    return summary


def keep(path: Path | None, resources: Resources) -> StateSummary | None:
    """At a stop: save the state to `path`, or, without one, count the jobs that are dropped.
    None when the endpoint or the file failed (logged)."""
    queues = kept_queues(resources.template, resources.jobs_queue) if path else []
    try:
        snapshot = take(
            resources.dynamodb,
            resources.sqs,
            resources.provisioned,
            queues,
            resources.s3 if path else None,
        )
        if path is not None:
            save(snapshot, path)
    except (BotoCoreError, ClientError, OSError) as exc:
        log.error(
            "local.state_not_saved",
            path=str(path),
            error_type=type(exc).__name__,
            error=str(exc),
        )
        return None
    summary = summarize(snapshot, resources.jobs_table)
    log.info(
        "local.state_saved" if path else "local.state_dropped",
        path=str(path) if path else None,
        jobs=summary.jobs,
        messages=summary.messages,
    )
    return summary
