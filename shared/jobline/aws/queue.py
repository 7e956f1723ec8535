"""SQS adapter for the jobs queue: messages carry ids and metadata, never payloads. Receipt handles
and SQS's visibility limits stay here: the domain asks to `postpone` a delivery."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from jobline.errors import QueueUnavailable
from jobline.limits import SQS_MAX_VISIBILITY_S
from jobline.models import JobMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


T = TypeVar("T")


CORRELATION_ATTRIBUTE = "correlation_id"
"""The message attribute carrying a job's correlation id (for consumers that read attributes)."""


def build_send_batch(
    queue_url: str, messages: Sequence[tuple[JobMessage, int]]
) -> dict[str, Any]:
    """SendMessageBatch request: entry ids are the messages' positions; the body holds the ids,
    a message's correlation id goes in a message attribute."""
    entries = []
    for index, (message, delay_seconds) in enumerate(messages):
        entry: dict[str, Any] = {
            "Id": str(index),
            "MessageBody": message.model_dump_json(
                exclude_none=True, exclude={"correlation_id"}
            ),
            "DelaySeconds": delay_seconds,
        }
        if message.correlation_id:
            entry["MessageAttributes"] = {
                CORRELATION_ATTRIBUTE: {
                    "DataType": "String",
                    "StringValue": message.correlation_id,
                }
            }
        entries.append(entry)
    return {"QueueUrl": queue_url, "Entries": entries}


def _call(operation: Callable[[], T]) -> T:
    """Run one SQS call; ClientError codes and transport failures become `QueueUnavailable`."""
    try:
        return operation()
    except ClientError as exc:
        raise QueueUnavailable(
            exc.response.get("Error", {}).get("Code", "unknown")
        ) from exc
    except BotoCoreError as exc:
        raise QueueUnavailable(type(exc).__name__) from exc


class SqsJobQueue:
    """The jobs queue through a boto3 SQS client created once per execution environment."""

    def __init__(
        self,
        client: SQSClient | Callable[[], SQSClient],
        queue_url: str,
        lane_urls: Mapping[str, str] | None = None,
    ) -> None:
        """`client` is the client, or the (cached) function that creates it on first use: a
        function that never calls SQS (the API: the outbox sends) then never builds one."""
        self._connect = client if callable(client) else lambda: client
        self._queue_url = queue_url
        self._lane_urls = {"default": queue_url, **(lane_urls or {})}
        """Each lane's queue (`jobline.lanes`)."""
        self._by_name = {
            url.rsplit("/", 1)[-1]: url for url in self._lane_urls.values()
        }

    @property
    def _client(self) -> SQSClient:
        return self._connect()

    def send_batch(
        self, messages: Sequence[tuple[JobMessage, int]], lane: str = "default"
    ) -> list[bool]:
        """Enqueue up to ten (message, delay seconds) on `lane`'s queue in one call; for each,
        whether SQS accepted it (SendMessageBatch answers per entry). A lane this deployment has
        no queue for is `QueueUnavailable` (the outbox tries again)."""
        url = self._lane_urls.get(lane)
        if url is None:
            raise QueueUnavailable(f"no queue for the {lane!r} lane is configured")
        request = build_send_batch(url, messages)
        response = _call(lambda: self._client.send_message_batch(**request))
        accepted = {int(entry["Id"]) for entry in response.get("Successful", [])}
        return [index in accepted for index in range(len(messages))]

    def postpone(
        self, receipt_handle: str, seconds: int, queue: str | None = None
    ) -> None:
        """Hide a received message (by its receipt handle) for `seconds` from now, at most
        SQS's 12 hours: the backoff before the next attempt."""
        _call(
            lambda: self._client.change_message_visibility(
                QueueUrl=self._by_name.get(queue or "", self._queue_url),
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=max(0, min(seconds, SQS_MAX_VISIBILITY_S)),
            )
        )
