"""Redrive: move messages from a dead-letter queue back to its queue, bounded and rate-limited.

    python -m jobline_ops.redrive [--source Q] [--target Q] [--max N] [--rate R] [--local]
    make redrive [SOURCE=Q] [TARGET=Q] [MAX=N] [RATE=R] [LOCAL=0]

`Q` is a queue URL or name. Without `--target` the target is Jobline's jobs queue (the settings'
`JOBLINE_QUEUE_URL`, or with `--source` alone, the one queue whose dead-letter queue the source is:
`ListDeadLetterSourceQueues`); without `--source` it is the target's dead-letter queue, read from
the target's `RedrivePolicy`. `--local` points everything at `make run`'s moto server and
resources (`make redrive` does by default; `LOCAL=0` uses the `JOBLINE_*` and `AWS_*` variables).

Each round receives up to 10 messages (never more than `--max` in all), then, before sending, waits
until the messages moved so far fit `--rate` messages per second since the start; it sends them to
the target with `SendMessageBatch` (body and message attributes as they were) and deletes from the
source, with `DeleteMessageBatch`, only the messages the target accepted. A message that could not be
sent stays in the source and comes back after its visibility timeout. One line is printed per
message, then a summary with what is left in the source (approximate, as SQS counts).

**Dead-lettered jobs are re-queued, not moved.** Once the dead-letter consumer has marked a job
`dead_lettered`, its old message is useless: a worker receiving it sees a finished job and
acknowledges it without running anything. So when the target is the jobs queue and a message names a
`dead_lettered` job, the command hands it to Jobline's service (`service.requeue_dead_lettered`, the
rule lives in `jobline.usecases.dead_letters`: the same re-queue as `POST /jobs/{id}/retry`, fresh attempts,
history kept, a fresh message on the jobs queue) and deletes the dead-letter message instead of
moving it. Messages of queued or running jobs
(the consumer was disabled, `DeadLetterConsumerEnabled=false`) are moved as they are: the worker
claims such a job as usual. Other bodies (e.g. ingest submissions) are always just moved.

**boto3, not aioboto3.** Bulk redrive is one of the few places where concurrent requests could pay,
but here the rate limit, not request latency, bounds the throughput: three requests move ten
messages, so one synchronous loop already moves well over a hundred messages a second, above any rate
you would want to push at the workers. The service path is synchronous boto3 code, and moto's
in-process mock (the tests) needs extra patching to serve aiobotocore. For millions of messages without the
service path, SQS's own `StartMessageMoveTask` moves them server-side.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError
from jobline.aws.blobs import S3BlobStore
from jobline.aws.queue import SqsJobQueue
from jobline.aws.repository import DynamoJobRepository
from jobline.bootstrap import build_service
from jobline.errors import JoblineError
from jobline.limits import SQS_MAX_BATCH
from jobline.logging import configure
from jobline.models import JobMessage
from jobline.service import JobService
from jobline_local.settings import LocalSettings
from pydantic import ValidationError

from jobline_ops.environment import Environment, aws_environment, local_environment

DEFAULT_MAX = 100
DEFAULT_RATE = 10.0
VISIBILITY_MARGIN_S = 30
"""How long a received message stays hidden beyond the wait before it is sent."""


class RedriveError(RuntimeError):
    """The queues could not be resolved (no dead-letter queue, no single source queue)."""


@dataclass
class RedriveReport:
    """What one redrive did."""

    moved: int = 0
    requeued: int = 0
    """Dead-lettered jobs re-queued through the service (their dead-letter message deleted)."""
    failed: int = 0
    remaining: int | None = None
    """Messages visible in the source afterwards (approximate)."""
    in_flight: int | None = None
    """Messages received but not deleted, hidden until their visibility timeout (approximate)."""


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A received message attribute as SendMessage takes it."""
    return {
        key: value[key]
        for key in ("DataType", "StringValue", "BinaryValue")
        if key in value
    }


def _job_id(message: dict[str, Any]) -> str:
    try:
        return str(json.loads(message["Body"])["job_id"])
    except (TypeError, ValueError, KeyError):
        return "-"


class Redrive:
    """Moves messages from `source_url` to `target_url`; see the module docstring."""

    def __init__(
        self,
        sqs: Any,
        source_url: str,
        target_url: str,
        *,
        service: JobService | None = None,
        out: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wait_time_s: int = 0,
    ) -> None:
        """`service`: re-queue dead-lettered jobs through it; give it only when the target is its
        jobs queue. `out` defaults to `sys.stdout` as it is when a line is written; `sleep` and
        `clock` pace the batches (tests pass fakes)."""
        self._sqs = sqs
        self.source_url = source_url
        self.target_url = target_url
        self._service = service
        self._out = out
        self._sleep = sleep
        self._clock = clock
        self._wait_time_s = wait_time_s

    def run(self, max_messages: int, rate: float) -> RedriveReport:
        """Handle up to `max_messages` messages at most `rate` per second; print and report."""
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if not rate > 0:
            raise ValueError("rate must be a positive number of messages per second")
        report = RedriveReport()
        batch_size = max(1, min(SQS_MAX_BATCH, math.floor(rate)))
        visibility = VISIBILITY_MARGIN_S + math.ceil(batch_size / rate)
        started = self._clock()
        handled = 0
        while handled < max_messages:
            messages = self._receive(
                min(batch_size, max_messages - handled), visibility
            )
            if not messages:
                break
            wait = started + handled / rate - self._clock()
            if wait > 0:
                self._sleep(wait)
            handled += len(messages)
            self._handle(messages, report)
        report.remaining, report.in_flight = self._left()
        self._print(
            f"redrive {self.source_url} -> {self.target_url}: moved={report.moved} "
            f"requeued={report.requeued} failed={report.failed} "
            f"remaining~{_count(report.remaining)} in_flight~{_count(report.in_flight)}"
        )
        return report

    def _receive(self, count: int, visibility: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.source_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=self._wait_time_s,
            VisibilityTimeout=visibility,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _handle(
        self, messages: Sequence[dict[str, Any]], report: RedriveReport
    ) -> None:
        done: list[dict[str, Any]] = []
        to_move: list[dict[str, Any]] = []
        for message in messages:
            requeued = self._requeue(message)
            if requeued is None:
                to_move.append(message)
            elif requeued:
                report.requeued += 1
                done.append(message)
            else:
                report.failed += 1
        if to_move:
            sent = self._send(to_move)
            report.moved += len(sent)
            report.failed += len(to_move) - len(sent)
            done.extend(sent)
        self._delete(done)

    def _requeue(self, message: dict[str, Any]) -> bool | None:
        """Re-queue a dead-lettered job through the service: True when done, False when it
        failed, None when the message is to be moved instead."""
        if self._service is None:
            return None
        try:
            job_message = JobMessage.model_validate_json(message["Body"])
        except ValidationError:
            return None
        message_id = message["MessageId"]
        try:
            job = self._service.requeue_dead_lettered(job_message)
        except JoblineError as exc:
            self._print(
                f"failed   {message_id} job={job_message.job_id}: {exc.message}"
            )
            return False
        if job is None:
            return None  # unknown, or not dead-lettered: move the message as it is
        self._print(
            f"requeued {message_id} job={job.id}: dead_lettered -> queued "
            "(fresh attempts, a new message)"
        )
        return True

    def _send(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send to the target; the messages it accepted."""
        entries = []
        for index, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
            attributes = message.get("MessageAttributes")
            if attributes:
                entry["MessageAttributes"] = {
                    name: _attribute(value) for name, value in attributes.items()
                }
            entries.append(entry)
        try:
            response = self._sqs.send_message_batch(
                QueueUrl=self.target_url, Entries=entries
            )
        except (ClientError, BotoCoreError) as exc:
            for message in messages:
                self._print(f"failed   {message['MessageId']}: {exc}")
            return []
        sent = []
        for result in response.get("Successful", []):
            message = messages[int(result["Id"])]
            sent.append(message)
            self._print(
                f"moved    {message['MessageId']} -> {result['MessageId']} "
                f"job={_job_id(message)}"
            )
        for result in response.get("Failed", []):
            message = messages[int(result["Id"])]
            self._print(
                f"failed   {message['MessageId']}: {result.get('Code')} "
                f"{result.get('Message', '')}".rstrip()
            )
        return sent

    def _delete(self, messages: Sequence[dict[str, Any]]) -> None:
        if not messages:
            return
        try:
            response = self._sqs.delete_message_batch(
                QueueUrl=self.source_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages)
                ],
            )
            failed = response.get("Failed", [])
        except (ClientError, BotoCoreError) as exc:
            failed = [
                {"Id": str(index), "Code": type(exc).__name__}
                for index in range(len(messages))
            ]
        for result in failed:
            message = messages[int(result["Id"])]
            self._print(
                f"warning  {message['MessageId']} was handled but not deleted "
                f"({result.get('Code')}): it will be handled again"
            )

    def _left(self) -> tuple[int | None, int | None]:
        try:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self.source_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        except (ClientError, BotoCoreError):
            return None, None
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def _print(self, line: str) -> None:
        out = self._out or sys.stdout
        out.write(line + "\n")
        out.flush()


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


# ---------------------------------------------------------------- resolving queues
def queue_url(sqs: Any, name_or_url: str) -> str:
    """A queue URL from a URL or a queue name."""
    if name_or_url.startswith(("http://", "https://")):
        return name_or_url
    url: str = sqs.get_queue_url(QueueName=name_or_url)["QueueUrl"]
    return url


def dead_letter_queue_of(sqs: Any, url: str) -> str:
    """The URL of the queue's dead-letter queue, from its RedrivePolicy."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["RedrivePolicy"]
    ).get("Attributes", {})
    if "RedrivePolicy" not in attributes:
        raise RedriveError(f"{url} has no dead-letter queue (no RedrivePolicy)")
    arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    _, _, _, _, account, name = arn.split(":", 5)
    dlq: str = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
        "QueueUrl"
    ]
    return dlq


def source_queue_of(sqs: Any, dlq_url: str) -> str:
    """The one queue whose dead-letter queue `dlq_url` is."""
    sources: list[str] = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get(
        "queueUrls", []
    )
    if len(sources) != 1:
        raise RedriveError(
            f"{dlq_url} is the dead-letter queue of {len(sources)} queues; name --target"
        )
    return sources[0]


# ------------------------------------------------------------------------------ CLI
def build_redrive(
    env: Environment, source: str | None, target: str | None, **options: Any
) -> Redrive:
    """Resolve the queues (see the module docstring) and the service for re-queueing."""
    jobs_queue = env.settings.queue_url if env.settings is not None else None
    source_url = queue_url(env.sqs, source) if source else None
    if target:
        target_url = queue_url(env.sqs, target)
    elif source_url is not None:
        target_url = source_queue_of(env.sqs, source_url)
    elif jobs_queue is not None:
        target_url = jobs_queue
    else:
        raise RedriveError("no target: name --target or set JOBLINE_QUEUE_URL")
    if source_url is None:
        source_url = dead_letter_queue_of(env.sqs, target_url)
    service = None
    if env.settings is not None and target_url == jobs_queue:
        bucket = env.settings.data_bucket
        service = build_service(
            env.settings,
            repository=DynamoJobRepository(env.dynamodb, env.settings.table_name),
            queue=SqsJobQueue(env.sqs, target_url),
            # a dead-lettered job's large payload is rewritten before it is re-queued
            blobs=None
            if bucket is None or env.s3 is None
            else S3BlobStore(env.s3, bucket),
        )
    return Redrive(env.sqs, source_url, target_url, service=service, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 when nothing failed."""
    parser = argparse.ArgumentParser(
        prog="python -m jobline_ops.redrive",
        description="Move messages from a dead-letter queue back to its queue.",
    )
    parser.add_argument("--source", help="dead-letter queue URL or name")
    parser.add_argument("--target", help="queue URL or name to move messages to")
    parser.add_argument(
        "--max", type=int, default=DEFAULT_MAX, help="messages at most (default 100)"
    )
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="messages per second (10)"
    )
    parser.add_argument(
        "--local", action="store_true", help="use make run's moto server and resources"
    )
    args = parser.parse_args(argv)
    configure("WARNING")  # the service's own log lines would drown the report
    try:
        env = local_environment(LocalSettings()) if args.local else aws_environment()
        redrive = build_redrive(env, args.source, args.target, wait_time_s=1)
        report = redrive.run(args.max, args.rate)
    except (RedriveError, ValueError) as exc:
        parser.error(str(exc))
    except (ClientError, BotoCoreError) as exc:
        sys.stderr.write(f"redrive: {exc}\n")
        return 2
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
