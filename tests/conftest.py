"""Shared fixtures: a clean environment for every test, moto resources built from template.yaml."""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config
from jobline import bootstrap
from jobline_local.endpoint import (
    SerializedMotoServer,
    endpoint_environment,
    local_client,
)
from jobline_local.poller import import_handler, lambda_record
from jobline_local.streams import StreamPoller
from jobline_local.template import (
    Provisioned,
    load_template,
    provision,
    stream_triggers,
)
from moto import mock_aws

from tests.support.faults import FaultInjector

REGION = "us-east-1"

# Tests read log lines as JSON, even under `pytest -s` on a terminal (where `auto` would pick the
# console renderer); handler modules configure logging when they are imported, during collection.
os.environ["JOBLINE_LOG_FORMAT"] = "json"
# And at DEBUG: a job's claim and dispatch are DEBUG lines (INFO is what an operator pays for), and
# tests follow a job through all of its lines.
os.environ.setdefault("JOBLINE_LOG_LEVEL", "DEBUG")


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
        "JOBLINE_DATA_BUCKET",
        "JOBLINE_DATA_EXPIRATION_DAYS",
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
    """Tables, queues and the data bucket from template.yaml inside moto, with the env pointing
    the functions at them."""

    provisioned: Provisioned
    dynamodb: Any
    sqs: Any
    streams: Any
    """A DynamoDB Streams client."""
    outbox: StreamPoller
    """The jobs table's stream feeding the outbox dispatcher, as its event source mapping."""
    s3: Any

    @property
    def bucket(self) -> str:
        return self.provisioned.buckets["JobDataBucket"]

    @property
    def table(self) -> str:
        return self.provisioned.tables["JobsTable"]

    @property
    def queue_url(self) -> str:
        return self.provisioned.queue_urls["JobsQueue"]

    @property
    def dlq_url(self) -> str:
        return self.provisioned.queue_urls["JobsDeadLetterQueue"]

    def dispatch(self) -> int:
        """Hand every new write of the jobs table to the outbox dispatcher (what the stream's
        event source mapping does within a fraction of a second); how many records it took."""
        done = 0
        while taken := self.outbox.poll_once():
            done += taken
        return done

    def receive(
        self, queue_url: str | None = None, max_messages: int = 10
    ) -> list[dict[str, Any]]:
        """Messages now visible on a queue, received the way Lambda's poller would (after the
        outbox has sent the messages of the writes so far)."""
        self.dispatch()
        response = self.sqs.receive_message(
            QueueUrl=queue_url or self.queue_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages


def outbox_of(
    template: dict[str, Any], provisioned: Provisioned, streams: Any
) -> StreamPoller:
    """The template's stream mapping onto the outbox dispatcher, read with `streams`."""
    [trigger] = stream_triggers(template)
    return StreamPoller(
        trigger,
        import_handler(trigger.handler),
        streams,
        provisioned.stream_arns[trigger.table],
        region=REGION,
    )


@pytest.fixture
def moto_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoStack]:
    """moto in-process with the template's table and queues; settings point at them."""
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        template = load_template()
        provisioned = provision(
            dynamodb, sqs, prefix="jobline-test", template=template, s3=s3
        )
        monkeypatch.setenv("JOBLINE_TABLE_NAME", provisioned.tables["JobsTable"])
        monkeypatch.setenv("JOBLINE_QUEUE_URL", provisioned.queue_urls["JobsQueue"])
        monkeypatch.setenv("JOBLINE_DATA_BUCKET", provisioned.buckets["JobDataBucket"])
        bootstrap.reset()
        streams = boto3.client(
            "dynamodbstreams",
            region_name=REGION,
            config=Config(account_id_endpoint_mode="disabled"),
        )
        outbox = outbox_of(template, provisioned, streams)
        yield MotoStack(
            provisioned=provisioned,
            dynamodb=dynamodb,
            sqs=sqs,
            streams=streams,
            outbox=outbox,
            s3=s3,
        )
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


@dataclass
class ServerStack(MotoStack):
    """The template's resources on a real (serialized) moto server, the functions' environment
    pointing at it, the outbox's stream mapping, and a fault injector on the functions' own
    clients: what "applied, then the answer was lost" needs (`mock_aws` cannot model it)."""

    server: SerializedMotoServer
    faults: FaultInjector = field(default_factory=FaultInjector)

    @property
    def queue_arn(self) -> str:
        return self.provisioned.queue_arns["JobsQueue"]

    def item(self, job_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.dynamodb.get_item(
            TableName=self.table, Key={"id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        return found


@pytest.fixture
def server_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerStack]:
    """A ServerStack; the injector is attached to the functions' clients, injecting nothing until
    a test scripts a fault."""
    with SerializedMotoServer() as server:
        endpoint = server.endpoint
        # moto's backends are this process's: forget what earlier tests' servers stored
        urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"),
            timeout=10,
        ).close()
        dynamodb = local_client("dynamodb", endpoint, REGION)
        sqs = local_client("sqs", endpoint, REGION)
        s3 = local_client("s3", endpoint, REGION)
        template = load_template()
        prefix = f"jobline-srv-{uuid.uuid4().hex[:8]}"
        provisioned = provision(dynamodb, sqs, prefix=prefix, template=template, s3=s3)
        for name, value in endpoint_environment(endpoint, REGION).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("JOBLINE_TABLE_NAME", provisioned.tables["JobsTable"])
        monkeypatch.setenv("JOBLINE_QUEUE_URL", provisioned.queue_urls["JobsQueue"])
        monkeypatch.setenv("JOBLINE_DATA_BUCKET", provisioned.buckets["JobDataBucket"])
        bootstrap.reset()
        streams = local_client("dynamodbstreams", endpoint, REGION)
        faults = FaultInjector(seed=0)
        faults.attach(bootstrap.dynamodb_client(), bootstrap.sqs_client())
        try:
            yield ServerStack(
                provisioned,
                dynamodb,
                sqs,
                streams,
                outbox_of(template, provisioned, streams),
                s3,
                server,
                faults,
            )
        finally:
            faults.detach()
            bootstrap.reset()
