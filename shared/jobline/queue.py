"""SQS adapter for the jobs queue: messages carry ids and metadata, never payloads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from jobline.errors import QueueUnavailable
from jobline.models import JobMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


def build_send(
    queue_url: str, message: JobMessage, delay_seconds: int
) -> dict[str, Any]:
    """SendMessage request for a job message."""
    return {
        "QueueUrl": queue_url,
        "MessageBody": message.model_dump_json(exclude_none=True),
        "DelaySeconds": delay_seconds,
    }


class SqsJobQueue:
    """The jobs queue through a boto3 SQS client created once per execution environment."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, message: JobMessage, delay_seconds: int) -> str:
        """Enqueue a job message; return the SQS message id."""
        try:
            response = self._client.send_message(
                **build_send(self._queue_url, message, delay_seconds)
            )
        except ClientError as exc:
            raise QueueUnavailable(
                exc.response.get("Error", {}).get("Code", "unknown")
            ) from exc
        except BotoCoreError as exc:
            raise QueueUnavailable(type(exc).__name__) from exc
        return response["MessageId"]

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received message for `seconds` from now (backoff before the next attempt)."""
        try:
            self._client.change_message_visibility(
                QueueUrl=self._queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=seconds,
            )
        except ClientError as exc:
            raise QueueUnavailable(
                exc.response.get("Error", {}).get("Code", "unknown")
            ) from exc
        except BotoCoreError as exc:
            raise QueueUnavailable(type(exc).__name__) from exc
