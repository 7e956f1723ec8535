"""The fault injector's additions for the soak's harder faults (issue 22): random held answers and
stragglers, 100 % throttle bursts on one call kind, stopping the faults while still recording,
and the record of each request (who made it, when it reached the server, what its caller saw)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from tests.conftest import REGION
from tests.support.faults import (
    Call,
    FaultInjector,
    FaultKind,
    Held,
    Late,
    LostResponse,
    Rates,
    SerializedMotoServer,
    Throttle,
    sets_any,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

WHO: ContextVar[str | None] = ContextVar("who", default=None)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server() -> Iterator[SerializedMotoServer]:
    with SerializedMotoServer() as running:
        yield running


def dynamodb(endpoint: str) -> DynamoDBClient:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )


def new_table(client: DynamoDBClient) -> str:
    name = f"stragglers-{uuid.uuid4().hex[:12]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def put_new(client: DynamoDBClient, table: str, item_id: str) -> None:
    client.put_item(
        TableName=table,
        Item={"id": {"S": item_id}},
        ConditionExpression="attribute_not_exists(id)",
    )


def call(kind: str, n: int = 1) -> Call:
    return Call(kind, 1, f"invocation-{n}", b"{}", {})


def test_held_answers_and_stragglers_are_drawn_with_their_delays() -> None:
    injector = FaultInjector(seed=5)
    injector.randomly("dynamodb.UpdateItem", Rates(held=1.0, held_s=(1.0, 2.0)))
    injector.randomly("dynamodb.PutItem", Rates(late=1.0, late_s=(3.0, 4.0)))

    held = [injector.decide(call("dynamodb.UpdateItem", n)).fault for n in range(20)]
    late = [injector.decide(call("dynamodb.PutItem", n)).fault for n in range(20)]

    assert all(isinstance(f, Held) and 1.0 <= f.max_s <= 2.0 for f in held)
    assert all(isinstance(f, Late) and 3.0 <= f.max_s <= 4.0 for f in late)
    assert len({f.max_s for f in held if isinstance(f, Held)}) > 1
    assert injector.count(FaultKind.HELD_RESPONSE) == 20
    assert injector.count(FaultKind.LATE_WRITE, source="random") == 20


def update(sets: str, removes: str) -> Call:
    """An UpdateItem that SETs one attribute and REMOVEs another."""
    params = {
        "UpdateExpression": "SET #f0 = :v0 REMOVE #f1",
        "ExpressionAttributeNames": {"#f0": sets, "#f1": removes},
    }
    return Call("dynamodb.UpdateItem", 1, "invocation-1", b"{}", params)


def test_random_faults_can_be_drawn_for_some_requests_of_a_kind_only() -> None:
    # Given stragglers on the UpdateItems that set a progress report, and none on the others
    injector = FaultInjector(seed=2)
    injector.randomly(
        "dynamodb.UpdateItem", Rates(held=1.0), where=sets_any("progress")
    )
    injector.randomly("dynamodb.UpdateItem", Rates())

    # Then a report is held, and a claim (which removes the progress) is not
    report = injector.decide(update(sets="progress", removes="lease_id"))
    claim = injector.decide(update(sets="lease_id", removes="progress"))
    assert isinstance(report.fault, Held)
    assert claim.fault is None


def test_a_throttle_burst_throttles_one_call_kind_and_nothing_else() -> None:
    clock = FakeClock()
    injector = FaultInjector(seed=3, clock=clock)
    (burst,) = injector.throttle_bursts(
        1, 10.0, calls=["dynamodb.PutItem"], duration=(2.0, 2.0)
    )
    assert (burst.calls, burst.end - burst.start, burst.source) == (
        "dynamodb.PutItem",
        2.0,
        "burst",
    )

    clock.now = burst.start + 1.0
    during = [injector.decide(call("dynamodb.PutItem", n)).fault for n in range(5)]
    other = injector.decide(call("dynamodb.UpdateItem")).fault
    clock.now = burst.end
    after = injector.decide(call("dynamodb.PutItem")).fault

    assert during == [Throttle()] * 5
    assert (other, after) == (None, None)
    assert injector.count(FaultKind.THROTTLE, source="burst") == 5
    assert injector.count(source="outage") == 0


def test_bursts_are_placed_by_the_seed_within_the_run() -> None:
    kinds = ["dynamodb.PutItem", "dynamodb.UpdateItem", "sqs.SendMessageBatch"]
    first = FaultInjector(seed=9).throttle_bursts(6, 40.0, calls=kinds, start=0.0)
    again = FaultInjector(seed=9).throttle_bursts(6, 40.0, calls=kinds, start=0.0)
    assert first == again
    assert all(0.0 <= w.start < w.end <= 40.0 and w.calls in kinds for w in first)
    assert all(2.0 <= w.end - w.start <= 4.0 for w in first)


def test_stopped_faults_inject_nothing_but_requests_are_still_recorded() -> None:
    injector = FaultInjector(seed=1)
    injector.randomly("*", Rates(throttle=1.0))
    injector.script(LostResponse(), "dynamodb.PutItem")
    injector.outage_for(60.0)
    injector.stop_faults()

    decision = injector.decide(call("dynamodb.PutItem"))

    assert (decision.fault, decision.source) == (None, None)
    assert injector.requests["dynamodb.PutItem"] == 1


def test_each_request_records_who_made_it_when_it_reached_the_server_and_what_was_seen(
    server: SerializedMotoServer,
) -> None:
    # Given a client whose 1st PutItem's answer is lost (as a read timeout), whose 2nd is
    # throttled, and a tag read from the calling thread's context
    client = dynamodb(server.endpoint)
    table = new_table(client)
    injector = FaultInjector(seed=0, tag=WHO.get)
    injector.script(LostResponse(as_timeout=True), "dynamodb.PutItem", nth=1)
    injector.script(Throttle(), "dynamodb.PutItem")  # the next first try

    # When one caller creates an item (its answer lost, botocore sends it again) and another
    # is throttled once
    with injector.attached(client):
        WHO.set("first")
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            put_new(client, table, "a")  # the retry meets its own earlier write
        WHO.set("second")
        put_new(client, table, "b")

    # Then each try says who made it, whether it reached the server, what its caller saw
    assert [
        (
            d.call.tag,
            type(d.fault).__name__,
            d.sent_at is not None,
            d.seen_status,
            d.answered,
        )
        for d in injector.decisions
    ] == [
        ("first", "LostResponse", True, None, False),
        ("first", "NoneType", True, 400, True),
        ("second", "Throttle", False, 400, False),
        ("second", "NoneType", True, 200, True),
    ]
    lost = injector.decisions[0]
    assert (lost.server_status, lost.seen_error) == (200, "ReadTimeoutError")


def test_a_late_straggler_reaches_the_server_when_released(
    server: SerializedMotoServer,
) -> None:
    client = dynamodb(server.endpoint)
    table = new_table(client)
    injector = FaultInjector(seed=0)
    late = injector.script(Late(max_s=10.0), "dynamodb.PutItem")
    with injector.attached(client):
        put_new(
            client, table, "c"
        )  # the straggler times out; botocore's retry creates it
        assert late.fired is not None and isinstance(late.fired.fault, Late)
        assert late.fired.sent_at is None
        released = time.monotonic()
        late.fired.fault.release.set()
        assert late.fired.fault.sent.wait(10.0)

    assert late.fired.fault.status == [400]  # it lands after the retry: refused
    assert late.fired.sent_at is not None and late.fired.sent_at >= released
