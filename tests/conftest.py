"""Shared fixtures: a clean environment for every test, moto resources built from template.yaml."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from jobline import bootstrap
from jobline_local.poller import lambda_record
from jobline_local.template import Provisioned, load_template, provision
from moto import mock_aws

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test can reach real AWS: fake credentials, no endpoint override, fresh cached clients."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "JOBLINE_ALLOW_DEV_IDENTITY",
        "JOBLINE_HTTP_ALLOW_NETWORKS",
        "JOBLINE_LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("JOBLINE_TABLE_NAME", "jobline-unit-table")
    monkeypatch.setenv(
        "JOBLINE_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/unit"
    )
    monkeypatch.setenv("JOBLINE_CURSOR_SECRET", "test-cursor-secret-0123456789abcdef")
    bootstrap.reset()
    yield
    bootstrap.reset()


@pytest.fixture
def loopback_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let http.request reach loopback (the tests' servers and closed ports), as a deployment with
    internal targets would allow-list them. Request it before fixtures that build the service."""
    monkeypatch.setenv("JOBLINE_HTTP_ALLOW_NETWORKS", "127.0.0.0/8")
    bootstrap.reset()


@dataclass
class MotoStack:
    """Tables and queues from template.yaml inside moto, with the env pointing the functions at them."""

    provisioned: Provisioned
    dynamodb: Any
    sqs: Any

    @property
    def table(self) -> str:
        return self.provisioned.tables["JobsTable"]

    @property
    def queue_url(self) -> str:
        return self.provisioned.queue_urls["JobsQueue"]

    @property
    def dlq_url(self) -> str:
        return self.provisioned.queue_urls["JobsDeadLetterQueue"]

    def receive(
        self, queue_url: str | None = None, max_messages: int = 10
    ) -> list[dict[str, Any]]:
        """Messages now visible on a queue, received the way Lambda's poller would."""
        response = self.sqs.receive_message(
            QueueUrl=queue_url or self.queue_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages


@pytest.fixture
def moto_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoStack]:
    """moto in-process with the template's table and queues; settings point at them."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        provisioned = provision(
            dynamodb, sqs, prefix="jobline-test", template=load_template()
        )
        monkeypatch.setenv("JOBLINE_TABLE_NAME", provisioned.tables["JobsTable"])
        monkeypatch.setenv("JOBLINE_QUEUE_URL", provisioned.queue_urls["JobsQueue"])
        bootstrap.reset()
        yield MotoStack(provisioned=provisioned, dynamodb=dynamodb, sqs=sqs)
        bootstrap.reset()


@dataclass
class FakeLambdaContext:
    """The parts of Lambda's context object Jobline uses."""

    timeout_s: float = 120.0
    function_name: str = "jobline-test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    """A fresh Lambda context with the worker's template timeout."""
    return FakeLambdaContext()


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS -> Lambda event, shaped as the event source mapping delivers it (the same records
    the local poller builds)."""
    return {
        "Records": [lambda_record(message, queue_arn, REGION) for message in messages]
    }
