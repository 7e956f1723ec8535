"""The handlers in this process against the moto server, driven as API Gateway and the event source
mappings drive them (the SQS ones, and the jobs table's stream feeding the outbox dispatcher): the
harness of the call-count, batch and throughput benches."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from jobline_local.poller import lambda_record
from jobline_local.streams import StreamPoller
from jobline_local.template import load_template, stream_triggers

from bench.coldstart import EVENTS, handler_of
from bench.motoserver import MotoServer

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
OWNER = "bench-user"


class Context:
    """A Lambda context with the function's timeout."""

    def __init__(self, function_name: str, timeout_s: float) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _import(spec: str) -> Handler:
    module_name, _, attribute = spec.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The functions' log lines go nowhere (they are still rendered and written)."""
    with contextlib.redirect_stdout(io.StringIO()) as sink:
        yield
        sink.truncate(0)


class Functions:
    """The API and worker handlers named in template.yaml, with the environment the template
    gives them, pointed at `server`; `sqs` and `dynamodb` are the bench's own clients."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server
        env = server.function_env("WorkerFunction", [])
        env.update(server.function_env("OutboxFunction", []))
        env.update(server.function_env("ApiFunction", []))
        for name in ("PATH", "PYTHONPATH", "AWS_LAMBDA_INITIALIZATION_TYPE"):
            env.pop(name, None)
        # The concurrency bench's http.request jobs call a loopback server: allow-list it, as a
        # deployment with internal targets would (by default only public addresses are reachable).
        env["JOBLINE_HTTP_ALLOW_NETWORKS"] = "127.0.0.0/8"
        os.environ.update(env)
        from jobline import bootstrap

        self.bootstrap = bootstrap
        bootstrap.reset()
        self.api = _import(handler_of("ApiFunction"))
        self.worker = _import(handler_of("WorkerFunction"))
        [trigger] = stream_triggers(load_template())
        assert server.provisioned is not None
        self.outbox = StreamPoller(
            trigger,
            _import(trigger.handler),
            server.client("dynamodbstreams"),
            server.provisioned.stream_arns[trigger.table],
            region="us-east-1",
        )
        self.sqs = server.client("sqs", max_pool_connections=20)
        self._queue_of: dict[str, str] = {}
        """The lane queue (logical id) each received message came from, by message id."""
        self.dynamodb = server.client("dynamodb", max_pool_connections=20)
        self._submit_event = json.loads((EVENTS / "api_submit_job.json").read_text())
        self._submit_event["headers"].pop("idempotency-key", None)
        self._submit_event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = (
            OWNER
        )

    def clients(self) -> list[Any]:
        """The functions' own AWS clients (created once per environment, as deployed)."""
        return [self.bootstrap.dynamodb_client(), self.bootstrap.sqs_client()]

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /jobs through the API handler; the accepted job."""
        event = dict(self._submit_event)
        event["body"] = json.dumps(request)
        event["headers"] = {
            **event["headers"],
            "content-length": str(len(event["body"])),
        }
        response = self.api(event, Context("ApiFunction", 10))
        if response["statusCode"] != 202:
            raise RuntimeError(f"submit answered {response!r}")
        job: dict[str, Any] = json.loads(response["body"])
        return job

    def dispatch(self) -> int:
        """Hand the table's new writes to the outbox dispatcher, as the stream's event source
        mapping does (a fraction of a second after each write); how many records it took."""
        done = 0
        while taken := self.outbox.poll_once():
            done += taken
        return done

    def receive(self, count: int) -> list[dict[str, Any]]:
        """`count` messages from the lanes' jobs queues, as their event source mappings receive
        them (each remembers its queue: `sqs_event` and `delete` use it)."""
        messages: list[dict[str, Any]] = []
        for _ in range(50):
            if len(messages) >= count:
                break
            for name, (url, _) in self.server.lane_queues.items():
                if len(messages) >= count:
                    break
                response = self.sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(10, count - len(messages)),
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                    WaitTimeSeconds=0,
                )
                for message in response.get("Messages", []):
                    self._queue_of[message["MessageId"]] = name
                    messages.append(message)
            if len(messages) < count:
                time.sleep(0.05)
        if len(messages) != count:
            raise RuntimeError(f"expected {count} messages, received {len(messages)}")
        return messages

    def _queue(self, message: dict[str, Any]) -> tuple[str, str]:
        """The URL and ARN of the queue `message` was received from."""
        name = self._queue_of.get(message["MessageId"], "JobsQueue")
        return self.server.lane_queues[name]

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The SQS -> Lambda event for `messages`, built as the local poller builds it."""
        return {
            "Records": [
                lambda_record(message, self._queue(message)[1], "us-east-1")
                for message in messages
            ]
        }

    def run_batch(
        self, messages: list[dict[str, Any]], timeout_s: float = 120
    ) -> dict[str, Any]:
        """Invoke the worker with `messages`, then delete what it did not return, as the event
        source mapping does with ReportBatchItemFailures."""
        response = self.worker(
            self.sqs_event(messages), Context("WorkerFunction", timeout_s)
        )
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        done = [message for message in messages if message["MessageId"] not in failed]
        self.delete(done)
        return response

    def delete(self, messages: list[dict[str, Any]]) -> None:
        by_queue: dict[str, list[dict[str, Any]]] = {}
        for message in messages:
            by_queue.setdefault(self._queue(message)[0], []).append(message)
        for url, of_queue in by_queue.items():
            for start in range(0, len(of_queue), 10):
                chunk = of_queue[start : start + 10]
                self.sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
                        for i, message in enumerate(chunk)
                    ],
                )

    def job(self, job_id: str) -> dict[str, Any]:
        """A job as stored (the bench's own read)."""
        item: dict[str, Any] = self.dynamodb.get_item(
            TableName=self.server.table, Key={"id": {"S": job_id}}, ConsistentRead=True
        )["Item"]
        return item


class CallCounter:
    """Counts the AWS operations the functions' clients make (botocore's `before-call` event:
    once per API call, retries not counted twice)."""

    def __init__(self, clients: list[Any]) -> None:
        self.calls: list[str] = []
        self.clients = clients
        for client in clients:
            client.meta.events.register("before-call", self._count)

    def close(self) -> None:
        for client in self.clients:
            client.meta.events.unregister("before-call", self._count)

    def _count(self, event_name: str, **_: Any) -> None:
        self.calls.append(event_name.removeprefix("before-call."))

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


def attribute(item: dict[str, Any], name: str) -> Any:
    """A plain value from a DynamoDB attribute."""
    value = item.get(name)
    if value is None:
        return None
    kind, raw = next(iter(value.items()))
    return json.loads(raw) if name in ("payload", "result") and kind == "S" else raw
