"""The fault injector itself (tests/faults.py): each fault does what it says to botocore clients
on a real moto server on loopback, scripted faults hit exactly their call, seeds repeat, and the
serialized server lets exactly one concurrent conditional claim win."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from jobline import bootstrap
from jobline.aws.queue import SqsJobQueue
from jobline.models import JobMessage
from moto.server import ThreadedMotoServer

from tests.conftest import REGION
from tests.support.faults import (
    Call,
    FaultInjector,
    FaultKind,
    Kill,
    Latency,
    LostResponse,
    Rates,
    SerializedMotoServer,
    Throttle,
    Unavailable,
    expression_value,
    item_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

RETRIES = Config(
    retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=24
)
CLAIMANTS = 20
ROUNDS = 10


class EnvironmentKilled(BaseException):
    """Stands for "the Lambda execution environment was killed mid-call"."""


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[SerializedMotoServer]:
    with SerializedMotoServer() as running:
        yield running


def dynamodb(endpoint: str, config: Config = RETRIES) -> DynamoDBClient:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def sqs(endpoint: str, config: Config = RETRIES) -> SQSClient:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def new_table(client: DynamoDBClient) -> str:
    name = f"faults-{uuid.uuid4().hex[:12]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def new_queue(client: SQSClient) -> str:
    return client.create_queue(QueueName=f"faults-{uuid.uuid4().hex[:12]}")["QueueUrl"]


def put_new(client: DynamoDBClient, table: str, item_id: str) -> None:
    """PutItem that only creates: fails if the item exists."""
    client.put_item(
        TableName=table,
        Item={"id": {"S": item_id}, "status": {"S": "queued"}},
        ConditionExpression="attribute_not_exists(id)",
    )


def claim(client: DynamoDBClient, table: str, item_id: str) -> bool:
    """The worker's claim: queued -> running, conditionally; True if this call won."""
    try:
        client.update_item(
            TableName=table,
            Key={"id": {"S": item_id}},
            UpdateExpression="SET #status = :running",
            ConditionExpression="#status = :expect_status0",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":running": {"S": "running"},
                ":expect_status0": {"S": "queued"},
            },
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def stored(client: DynamoDBClient, table: str, item_id: str) -> bool:
    return "Item" in client.get_item(TableName=table, Key={"id": {"S": item_id}})


@pytest.mark.parametrize("as_timeout", [False, True], ids=["500", "read-timeout"])
def test_a_lost_response_is_applied_and_the_retry_meets_its_own_write(
    server: SerializedMotoServer, as_timeout: bool
) -> None:
    # Given a table, and a lost response scripted on the first PutItem
    client = dynamodb(server.endpoint)
    table = new_table(client)
    injector = FaultInjector()
    lost = injector.script(LostResponse(as_timeout=as_timeout), "dynamodb.PutItem")
    before = server.requests["dynamodb.PutItem"]

    # When a create-only PutItem is made
    with (
        injector.attached(client),
        pytest.raises(client.exceptions.ConditionalCheckFailedException),
    ):
        put_new(client, table, "job-1")

    # Then the first try was applied (the server said 200), and botocore's retry failed its
    # condition against it: the caller sees a conflict for its own write
    assert lost.fired is not None
    assert lost.fired.server_status == 200
    assert server.requests["dynamodb.PutItem"] - before == 2
    assert [d.call.attempt for d in injector.decisions] == [1, 2]
    assert stored(client, table, "job-1")


@pytest.mark.parametrize("service", ["dynamodb", "sqs"])
def test_a_throttle_is_retried_and_the_next_try_succeeds(
    server: SerializedMotoServer, service: str
) -> None:
    # Given a throttle scripted on the first write
    injector = FaultInjector()
    if service == "dynamodb":
        ddb = dynamodb(server.endpoint)
        table = new_table(ddb)
        kind = "dynamodb.PutItem"
        injector.script(Throttle(), kind)
        before = server.requests[kind]

        # When the write is made
        with injector.attached(ddb):
            put = ddb.put_item(TableName=table, Item={"id": {"S": "job-1"}})
        retries = put["ResponseMetadata"]["RetryAttempts"]
        assert stored(ddb, table, "job-1")
    else:
        queue = sqs(server.endpoint)
        url = new_queue(queue)
        kind = "sqs.SendMessage"
        injector.script(Throttle(), kind)
        before = server.requests[kind]
        with injector.attached(queue):
            sent = queue.send_message(QueueUrl=url, MessageBody="hello")
        retries = sent["ResponseMetadata"]["RetryAttempts"]
        messages = queue.receive_message(QueueUrl=url).get("Messages", [])
        assert [m["Body"] for m in messages] == ["hello"]

    # Then botocore retried once and the retry succeeded; the throttled try never reached moto
    assert retries == 1
    assert server.requests[kind] - before == 1
    assert injector.count(FaultKind.THROTTLE) == 1
    assert injector.requests[kind] == 2


@pytest.mark.parametrize(
    ("service", "code", "config", "attempts"),
    [
        # the repository's own setting: botocore reads `max_attempts` as *retries*, so 4 tries
        ("dynamodb", "ProvisionedThroughputExceededException", RETRIES, 4),
        # `total_max_attempts` counts tries (and keeps this file's backoff sleeps short)
        (
            "sqs",
            "RequestThrottled",
            Config(retries={"mode": "standard", "total_max_attempts": 2}),
            2,
        ),
    ],
)
def test_a_throttle_on_every_try_surfaces_after_the_last_attempt(
    server: SerializedMotoServer,
    service: str,
    code: str,
    config: Config,
    attempts: int,
) -> None:
    # Given every request throttled
    injector = FaultInjector()
    injector.randomly("*", Rates(throttle=1.0))

    # When one write is made
    with pytest.raises(ClientError) as raised:
        if service == "dynamodb":
            ddb = dynamodb(server.endpoint, config)
            table = new_table(ddb)
            with injector.attached(ddb):
                ddb.put_item(TableName=table, Item={"id": {"S": "job-1"}})
        else:
            queue = sqs(server.endpoint, config)
            url = new_queue(queue)
            with injector.attached(queue):
                queue.send_message(QueueUrl=url, MessageBody="hello")

    # Then the caller gets the throttling error once botocore's attempts are used up
    error = raised.value.response
    metadata: dict[str, object] = dict(error["ResponseMetadata"])
    assert error["Error"]["Code"] == code
    assert metadata["HTTPStatusCode"] == 400
    assert metadata["MaxAttemptsReached"] is True
    assert metadata["RetryAttempts"] == attempts - 1
    assert injector.count(FaultKind.THROTTLE) == attempts
    assert [d.call.attempt for d in injector.decisions] == list(range(1, attempts + 1))


def test_latency_delays_the_call(server: SerializedMotoServer) -> None:
    # Given a 200 ms latency on the first GetItem
    client = dynamodb(server.endpoint)
    table = new_table(client)
    injector = FaultInjector()
    injector.script(Latency(ms=200), "dynamodb.GetItem")

    # When two reads are made
    with injector.attached(client):
        started = time.perf_counter()
        client.get_item(TableName=table, Key={"id": {"S": "x"}})
        slow = time.perf_counter() - started
        started = time.perf_counter()
        client.get_item(TableName=table, Key={"id": {"S": "x"}})
        fast = time.perf_counter() - started

    # Then only the first waited, and both were answered
    assert slow >= 0.2
    assert fast < 0.2
    assert injector.count(FaultKind.LATENCY) == 1


def test_an_outage_window_fails_calls_inside_it_only(
    server: SerializedMotoServer,
) -> None:
    # Given an outage of PutItem from t=10 s to t=20 s on the injector's clock, and a client
    # that does not retry (so the call inside fails at once instead of sleeping through backoff)
    client = dynamodb(server.endpoint, Config(retries={"total_max_attempts": 1}))
    table = new_table(client)
    clock = FakeClock()
    injector = FaultInjector(clock=clock)
    injector.outage(clock.now + 10, clock.now + 20, "dynamodb.PutItem")

    with injector.attached(client):
        # When a write is made before, during and after it (and a read during it)
        client.put_item(TableName=table, Item={"id": {"S": "before"}})
        clock.now += 15
        with pytest.raises(ClientError) as raised:
            client.put_item(TableName=table, Item={"id": {"S": "during"}})
        client.get_item(TableName=table, Key={"id": {"S": "during"}})
        clock.now += 10
        client.put_item(TableName=table, Item={"id": {"S": "after"}})

    # Then only the write inside failed, with a 503, and it was not applied
    error = raised.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ServiceUnavailable",
        503,
    )
    assert [(d.call.kind, d.source) for d in injector.injected] == [
        ("dynamodb.PutItem", "outage")
    ]
    assert [stored(client, table, i) for i in ("before", "during", "after")] == [
        True,
        False,
        True,
    ]


def test_random_outages_are_scheduled_inside_the_run() -> None:
    injector = FaultInjector(seed=3)
    start = time.monotonic()
    windows = injector.schedule_outages(4, 10.0, duration=(0.5, 1.0), start=start)
    assert windows == FaultInjector(seed=3).schedule_outages(
        4, 10.0, duration=(0.5, 1.0), start=start
    )
    assert all(start <= w.start < w.end <= start + 10.0 for w in windows)
    assert all(0.5 <= w.end - w.start <= 1.0 for w in windows)


def test_a_scripted_fault_hits_exactly_the_nth_matching_call(
    server: SerializedMotoServer,
) -> None:
    # Given four queued items, and a lost response scripted on the 2nd UpdateItem that expects
    # status running
    client = dynamodb(server.endpoint)
    table = new_table(client)
    for i in range(4):
        client.put_item(
            TableName=table, Item={"id": {"S": f"job-{i}"}, "status": {"S": "queued"}}
        )
    injector = FaultInjector()
    lost = injector.script(
        LostResponse(),
        "dynamodb.UpdateItem",
        nth=2,
        where=expression_value(":expect_status0", "running"),
    )

    def finish(item_id: str) -> None:
        client.update_item(
            TableName=table,
            Key={"id": {"S": item_id}},
            UpdateExpression="SET #status = :done",
            ConditionExpression="#status = :expect_status0",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":done": {"S": "succeeded"},
                ":expect_status0": {"S": "running"},
            },
        )

    # When each is claimed and then finished (claims expect queued, finishes expect running)
    with injector.attached(client):
        for i in range(4):
            assert claim(client, table, f"job-{i}")
        finish("job-0")
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            finish("job-1")  # applied, response lost, retry finds it succeeded
        finish("job-2")
        finish("job-3")

    # Then exactly one fault was injected, on job-1's finish, and the retry was not counted
    assert lost.fired is not None
    assert [d.seq for d in injector.injected] == [lost.fired.seq]
    assert item_key("job-1")(lost.fired.call)
    assert lost.seen == 2
    assert injector.requests["dynamodb.UpdateItem"] == 9


def call(kind: str, n: int) -> Call:
    return Call(kind, 1, f"invocation-{n}", b"{}", {})


def test_the_same_seed_gives_the_same_decisions() -> None:
    rates = Rates(
        throttle=0.2, unavailable=0.1, lost_response=0.2, latency=0.2, latency_ms=(1, 9)
    )

    def decisions(seed: int, kinds: list[str]) -> dict[str, list[str]]:
        injector = FaultInjector(seed=seed)
        injector.randomly("dynamodb.*", rates)
        injector.randomly("sqs.*", Rates(throttle=0.5))
        seen: dict[str, list[str]] = {}
        for n, kind in enumerate(kinds):
            seen.setdefault(kind, []).append(repr(injector.decide(call(kind, n)).fault))
        return seen

    kinds = ["dynamodb.UpdateItem", "dynamodb.PutItem", "sqs.SendMessage"] * 40
    first = decisions(11, kinds)
    # The same seed repeats every decision, even with other call kinds interleaved differently
    assert decisions(11, kinds) == first
    assert decisions(11, sorted(kinds)) == first
    assert decisions(12, kinds) != first
    # And the draws follow the rates
    throttles = first["sqs.SendMessage"].count("Throttle(code=None)")
    assert 10 <= throttles <= 30


def test_the_table_counts_what_was_injected(server: SerializedMotoServer) -> None:
    # Given random latency on reads (a fault botocore does not retry)
    client = dynamodb(server.endpoint)
    table = new_table(client)
    injector = FaultInjector(seed=5)
    injector.randomly("dynamodb.GetItem", Rates(latency=0.5, latency_ms=(1, 2)))

    # When a few reads are made
    with injector.attached(client):
        for i in range(20):
            client.get_item(TableName=table, Key={"id": {"S": f"job-{i}"}})

    # Then the table has a row per call kind and a total, and the counts add up
    injector.print_table("random latency on reads")
    rendered = injector.table()
    lines = rendered.splitlines()
    assert lines[0].split()[:4] == ["call", "requests", "passed", "throttle"]
    assert lines[1].split()[:2] == ["dynamodb.GetItem", "20"]
    latency = injector.count(FaultKind.LATENCY)
    assert 0 < latency < 20
    assert lines[-1].split()[:3] == ["total", "20", str(20 - latency)]


def test_kill_before_sending_applies_nothing_and_is_not_retried(
    server: SerializedMotoServer,
) -> None:
    client = dynamodb(server.endpoint)
    table = new_table(client)
    injector = FaultInjector()
    injector.script(Kill(EnvironmentKilled), "dynamodb.PutItem")
    before = server.requests["dynamodb.PutItem"]

    with injector.attached(client), pytest.raises(EnvironmentKilled):
        put_new(client, table, "job-1")

    assert server.requests["dynamodb.PutItem"] == before
    assert injector.requests["dynamodb.PutItem"] == 1
    assert not stored(client, table, "job-1")


def test_kill_after_sending_applies_the_write_and_is_not_retried(
    server: SerializedMotoServer,
) -> None:
    client = dynamodb(server.endpoint)
    table = new_table(client)
    injector = FaultInjector()
    killed = injector.script(
        Kill(EnvironmentKilled, after_send=True), "dynamodb.PutItem"
    )
    before = server.requests["dynamodb.PutItem"]

    with injector.attached(client), pytest.raises(EnvironmentKilled):
        put_new(client, table, "job-1")

    assert killed.fired is not None
    assert killed.fired.server_status == 200
    assert server.requests["dynamodb.PutItem"] - before == 1
    assert injector.requests["dynamodb.PutItem"] == 1
    assert stored(client, table, "job-1")


def test_it_attaches_to_bootstraps_clients_and_detaches(
    server: SerializedMotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the composition root's clients on the moto server, and a queue
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    bootstrap.reset()
    client = bootstrap.sqs_client()
    url = new_queue(sqs(server.endpoint))
    queue = SqsJobQueue(client, url)
    message = JobMessage(job_id="0" * 32, owner="ann", job_type="echo")
    injector = FaultInjector()
    injector.script(Unavailable(), "sqs.SendMessageBatch", nth=1)
    injector.script(Throttle(), "sqs.SendMessageBatch", nth=2)

    # When the adapter sends while attached (a 503, retried), then once detached
    with injector.attached(client):
        assert queue.send_batch([(message, 0)]) == [True]
    assert queue.send_batch([(message, 0)]) == [True]

    # Then the first send succeeded on its retry, and the second saw no fault at all
    assert [d.fault for d in injector.injected] == [Unavailable()]
    assert [d.call.attempt for d in injector.decisions] == [1, 2]
    assert (
        len(
            sqs(server.endpoint).receive_message(QueueUrl=url, MaxNumberOfMessages=10)[
                "Messages"
            ]
        )
        == 2
    )


def test_it_refuses_a_client_that_is_not_on_loopback() -> None:
    client = boto3.client("sqs", region_name=REGION)
    with pytest.raises(ValueError, match="loopback"):
        FaultInjector().attach(client)


def claim_rounds(endpoint: str, rounds: int) -> list[int]:
    """Winners per round of CLAIMANTS threads claiming one queued item at once."""
    client = dynamodb(endpoint)
    table = new_table(client)
    winners = []
    for round_ in range(rounds):
        item_id = f"job-{round_}"
        client.put_item(
            TableName=table, Item={"id": {"S": item_id}, "status": {"S": "queued"}}
        )
        barrier = threading.Barrier(CLAIMANTS)
        wins: list[bool] = []

        def claimant(
            item_id: str = item_id,
            barrier: threading.Barrier = barrier,
            wins: list[bool] = wins,
        ) -> None:
            barrier.wait(10)
            wins.append(claim(client, table, item_id))  # list.append is atomic

        threads = [threading.Thread(target=claimant) for _ in range(CLAIMANTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(wins) == CLAIMANTS
        winners.append(sum(wins))
    return winners


@contextmanager
def frequent_thread_switches(interval_s: float = 1e-5) -> Iterator[None]:
    """Let the interpreter switch threads every `interval_s` (default 5 ms), so a thread is
    likelier to be preempted between moto's condition check and its write: the race shows."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_the_serialized_server_lets_exactly_one_concurrent_claim_win(
    server: SerializedMotoServer,
) -> None:
    # When 20 threads claim one queued item at once, round after round, preempted often
    with frequent_thread_switches():
        winners = claim_rounds(server.endpoint, rounds=ROUNDS)

    # Then exactly one claim wins each round
    assert winners == [1] * ROUNDS

    # For contrast (measured, not asserted): moto's stock threaded server
    stock = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    stock.start()
    try:
        host, port = stock.get_host_and_port()
        with frequent_thread_switches():
            unserialized = claim_rounds(f"http://{host}:{port}", rounds=ROUNDS)
    finally:
        stock.stop()
    doubled = sum(1 for w in unserialized if w > 1)
    print(  # noqa: T201  (the figure this test reports)
        f"\nunserialized moto: {doubled}/{len(unserialized)} rounds with more than one"
        f" winner of {CLAIMANTS} concurrent claims; winners per round: {unserialized}"
    )
