"""Flow control over the HTTP API (issue 18, docs/flow-control.md): GET /limits, an admin's
PUT /limits/{name} (403 for anyone else), pausing and resuming a job type, POST /jobs?dry_run=true
(nothing written), `blocked_on` with its position on GET /jobs/{id}, and 429 with Retry-After."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from jobline.flow import Concurrency, FlowKey, RateLimit, escape
from jobline.models import JobStatus, SubmitRequest
from jobline_api.app import create_app
from jobline_api.dependencies import get_job_service
from jobline_api.handler import app as handler_app
from jobline_api.handler import lambda_handler

from tests.conftest import FakeLambdaContext
from tests.support.builders import delivery_of
from tests.support.events import http_api_event
from tests.support.fakes import (
    START,
    CountingHandler,
    FakeClock,
    InMemoryFlowStore,
    job_type_of,
)
from tests.support.services import build_fake_service, build_registry
from tests.unit.api.calls import ANN, BOB, Fakes, error_detail

ROOT = {"X-Dev-User": "root"}
PER_OWNER = Concurrency(name="per-owner", key="{owner}", limit=2)
PER_ACCOUNT = Concurrency(name="crm", key="{owner}:{payload.account}", limit=1)
CALLS = RateLimit(name="calls", key="{owner}", limit=1, period_s=30, on_limit="reject")


class FlowFakes:
    """A fake deployment with limited types, its control table kept in sight."""

    def __init__(self) -> None:
        self.store = InMemoryFlowStore()
        handler = CountingHandler()
        limited = replace(
            job_type_of("limited", handler), concurrency=(PER_OWNER, PER_ACCOUNT)
        )
        rated = replace(job_type_of("rated", handler), rate_limits=(CALLS,))
        self.clock = FakeClock(step=timedelta())
        self.fakes: Fakes = build_fake_service(
            build_registry([limited, rated]),
            clock=self.clock,
            flow_store=self.store,
        )
        self.service, self.repo, self.queue = self.fakes

    def hold(self, owner: str, key: FlowKey) -> str:
        """A running job of `owner` holds a permit of `key`; its id."""
        request = SubmitRequest(type="limited", payload={"account": "held"})
        job = self.service.submit(owner, request).job
        self.repo.put(job.model_copy(update={"status": JobStatus.RUNNING}))
        assert self.store.acquire(key, key.limit, job.id, "lease", START) is None
        return job.id


@pytest.fixture
def flow() -> FlowFakes:
    return FlowFakes()


@pytest.fixture
def client(flow: FlowFakes) -> Iterator[TestClient]:
    app = create_app(service_factory=lambda: flow.service, allow_dev_identity=True)
    app.state.admins = ("root",)
    app.state.admin_group = None
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def submit(client: TestClient, headers: dict[str, str] = ANN, **body: Any) -> Any:
    return client.post("/jobs", json={"type": "limited", **body}, headers=headers)


def own_key(owner: str) -> FlowKey:
    return FlowKey(name=PER_OWNER.name, key=escape(owner), limit=PER_OWNER.limit)


# --------------------------------------------------------------------------- GET /limits
def test_limits_show_the_callers_keys_held_and_waiting(
    client: TestClient, flow: FlowFakes
) -> None:
    # Given one of ann's jobs holds her per-owner key
    flow.hold("ann", own_key("ann"))

    # When ann and bob ask for their limits
    ann = client.get("/limits", headers=ANN)
    bob = client.get("/limits", headers=BOB)

    # Then each sees the declared limits, with their own key's permits where the key depends
    # on the caller only; a key on the payload is not enumerable; the rate limit is shown too
    assert ann.status_code == 200
    by_name = {limit["name"]: limit for limit in ann.json()["limits"]}
    assert by_name["per-owner"] | {"job_type": "limited"} == by_name["per-owner"]
    assert (
        by_name["per-owner"]["key"],
        by_name["per-owner"]["held"],
        by_name["per-owner"]["waiting"],
        by_name["per-owner"]["limit"],
        by_name["per-owner"]["override"],
    ) == ("ann", 1, 0, 2, None)
    assert (by_name["crm"]["key"], by_name["crm"]["held"]) == (None, None)
    assert (by_name["calls"]["kind"], by_name["calls"]["period_s"]) == ("rate", 30)
    assert ann.json()["pauses"] == []
    bobs = {limit["name"]: limit for limit in bob.json()["limits"]}
    assert (bobs["per-owner"]["key"], bobs["per-owner"]["held"]) == ("bob", 0)


def test_limits_refuse_a_query_and_need_an_identity(client: TestClient) -> None:
    assert client.get("/limits?x=1", headers=ANN).status_code == 422
    assert client.get("/limits").status_code == 401


# ----------------------------------------------------------------------- PUT /limits/{name}
def test_only_an_admin_overrides_a_limit(client: TestClient, flow: FlowFakes) -> None:
    # When ann (no admin) tries to raise a limit, she is refused and nothing changes
    refused = client.put("/limits/per-owner", json={"limit": 9}, headers=ANN)
    assert refused.status_code == 403
    assert "admin" in error_detail(refused)
    assert flow.store.settings().overrides == {}

    # When an admin sets it, it is in force and shown to every caller
    done = client.put("/limits/per-owner", json={"limit": 3}, headers=ROOT)
    assert (done.status_code, done.json()) == (200, {"name": "per-owner", "limit": 3})
    shown = {v["name"]: v for v in client.get("/limits", headers=ANN).json()["limits"]}
    assert (shown["per-owner"]["limit"], shown["per-owner"]["override"]) == (3, 3)

    # And null takes the override away
    back = client.put("/limits/per-owner", json={"limit": None}, headers=ROOT)
    assert back.status_code == 200
    assert flow.store.settings().overrides == {}


def test_an_override_of_an_unknown_or_invalid_limit_is_refused(
    client: TestClient,
) -> None:
    unknown = client.put("/limits/nope", json={"limit": 3}, headers=ROOT)
    assert unknown.status_code == 404
    assert "nope" in error_detail(unknown)
    for body in ({"limit": 0}, {"limit": 10_001}, {"limit": 2, "extra": 1}, {}):
        response = client.put("/limits/per-owner", json=body, headers=ROOT)
        assert response.status_code == 422, body


@pytest.fixture
def lambda_flow(
    flow: FlowFakes, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlowFakes]:
    """The Lambda handler's own app over the fake, its admins named by the JWT group `ops`."""
    monkeypatch.setenv("JOBLINE_ALLOW_DEV_IDENTITY", "false")
    monkeypatch.setattr(handler_app.state, "admins", (), raising=False)
    monkeypatch.setattr(handler_app.state, "admin_group", "ops", raising=False)
    handler_app.dependency_overrides[get_job_service] = lambda: flow.service
    try:
        yield flow
    finally:
        handler_app.dependency_overrides.pop(get_job_service, None)
        structlog.contextvars.clear_contextvars()


def _put_limit_as(sub: str, groups: Any) -> int:
    event = http_api_event(
        "PUT", "/limits/per-owner", body=json.dumps({"limit": 4}), sub=sub
    )
    if groups is not None:
        event["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] = (
            groups
        )
    status: int = lambda_handler(event, FakeLambdaContext())["statusCode"]
    return status


@pytest.mark.parametrize(
    ("groups", "status"),
    [
        ("[ops readers]", 200),
        (["readers", "ops"], 200),
        ("[readers]", 403),
        (None, 403),
    ],
)
def test_a_member_of_the_admin_group_is_an_admin(
    lambda_flow: FlowFakes, groups: Any, status: int
) -> None:
    assert _put_limit_as("user-1", groups) == status
    expected = {"per-owner": 4} if status == 200 else {}
    assert lambda_flow.store.settings().overrides == expected


# ------------------------------------------------------------------------ pause / resume
def test_a_caller_pauses_and_resumes_her_own_jobs(
    client: TestClient, flow: FlowFakes
) -> None:
    # Given ann paused the type: her submit is still accepted
    paused = client.post("/job-types/limited/pause", headers=ANN)
    assert (paused.status_code, paused.json()["paused"]) == (200, True)
    job = submit(client, payload={"account": "a1"}).json()
    bobs = submit(client, BOB, payload={"account": "b1"}).json()

    # and says why it waits before any worker looked at it; bob's does not wait
    waiting = client.get(f"/jobs/{job['id']}", headers=ANN).json()["blocked_on"]
    assert (waiting["reason"], waiting["key"]) == ("paused", "limited#ann")
    assert client.get(f"/jobs/{bobs['id']}", headers=BOB).json()["blocked_on"] is None
    assert [
        (p["job_type"], p["owner"])
        for p in client.get("/limits", headers=ANN).json()["pauses"]
    ] == [("limited", "ann")]

    # When a worker claims it, it is parked: no attempt used, its message acknowledged
    stored = flow.repo.get(job["id"])
    assert stored is not None
    flow.service.run(delivery_of(stored))
    parked = client.get(f"/jobs/{job['id']}", headers=ANN).json()
    assert (parked["status"], parked["attempts"]) == ("queued", 0)
    assert (parked["blocked_on"]["reason"], parked["blocked_on"]["position"]) == (
        "paused",
        0,
    )
    sent = sum(1 for m in flow.queue.sent if m.message.job_id == job["id"])

    # When she resumes, it is woken: a new message, nothing waits any more
    resumed = client.post("/job-types/limited/resume", headers=ANN)
    assert (resumed.status_code, resumed.json()["woken"]) == (200, 1)
    assert sum(1 for m in flow.queue.sent if m.message.job_id == job["id"]) == sent + 1
    assert client.get(f"/jobs/{job['id']}", headers=ANN).json()["blocked_on"] is None


def test_only_an_admin_pauses_every_owner(client: TestClient, flow: FlowFakes) -> None:
    refused = client.post("/job-types/limited/pause?everyone=true", headers=ANN)
    assert refused.status_code == 403
    assert flow.store.settings().pauses == {}
    done = client.post("/job-types/limited/pause?everyone=true", headers=ROOT)
    assert (done.status_code, done.json()["everyone"]) == (200, True)
    job = submit(client, BOB, payload={"account": "b1"}).json()
    blocked = client.get(f"/jobs/{job['id']}", headers=BOB).json()["blocked_on"]
    assert (blocked["reason"], blocked["key"]) == ("paused", "limited")
    assert (
        client.post("/job-types/limited/resume?everyone=true", headers=ANN).status_code
        == 403
    )
    assert (
        client.post("/job-types/limited/resume?everyone=true", headers=ROOT).status_code
        == 200
    )
    assert flow.store.settings().pauses == {}


def test_pausing_an_unknown_type_is_refused(
    client: TestClient, flow: FlowFakes
) -> None:
    # A path naming a type the deployment does not have is 404, as a job nobody has
    for action in ("pause", "resume"):
        response = client.post(f"/job-types/nope/{action}", headers=ANN)
        assert response.status_code == 404
        assert response.json()["detail"] == "no job type is called 'nope'"
    assert flow.store.settings().pauses == {}


# ------------------------------------------------------------------------------ blocked_on
def test_a_parked_job_shows_what_it_waits_for_and_its_place(
    client: TestClient, flow: FlowFakes
) -> None:
    # Given ann's account key is held by a running job
    flow.hold("ann", FlowKey(name="crm", key="ann:a1", limit=1))
    first = submit(client, payload={"account": "a1"}).json()
    flow.clock.advance(timedelta(seconds=1))
    second = submit(client, payload={"account": "a1"}).json()

    # When workers claim both, both are parked
    for job in (first, second):
        stored = flow.repo.get(job["id"])
        assert stored is not None
        flow.service.run(delivery_of(stored))

    # Then each says why, on which key, since when, and its place in the line
    shown = [
        client.get(f"/jobs/{job['id']}", headers=ANN).json()["blocked_on"]
        for job in (first, second)
    ]
    assert [(b["reason"], b["key"], b["position"]) for b in shown] == [
        ("concurrency", "crm#ann:a1", 0),
        ("concurrency", "crm#ann:a1", 1),
    ]
    assert all(b["since"] for b in shown)
    # and a listing shows the reason too (without the position)
    listed = client.get("/jobs?status=queued", headers=ANN).json()["items"]
    assert [item["blocked_on"]["reason"] for item in listed] == ["concurrency"] * 2


# --------------------------------------------------------------------------------- dry run
def test_a_dry_run_answers_the_limits_and_writes_nothing(
    client: TestClient, flow: FlowFakes
) -> None:
    flow.hold("ann", FlowKey(name="crm", key="ann:a1", limit=1))
    writes = flow.store.writes

    response = client.post(
        "/jobs?dry_run=true",
        json={"type": "limited", "payload": {"account": "a1"}, "priority": "high"},
        headers=ANN,
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["dry_run"], body["type"], body["lane"]) == (True, "limited", "high")
    assert [(k["name"], k["key"], k["held"], k["limit"]) for k in body["keys"]] == [
        ("per-owner", "ann", 0, 2),
        ("crm", "ann:a1", 1, 1),
    ]
    assert body["wait_reasons"] == ["concurrency"]
    assert body["estimated_start"] > START.isoformat()
    assert body["estimated_cost_usd"] > 0
    assert (len(flow.repo.jobs), flow.store.writes) == (1, writes)  # the holder only


def test_a_dry_run_validates_as_a_submit_does(
    client: TestClient, flow: FlowFakes
) -> None:
    missing_field = submit(client, payload={}, priority="low")  # key on payload.account
    unknown = client.post("/jobs?dry_run=true", json={"type": "nope"}, headers=ANN)
    dry_missing = client.post(
        "/jobs?dry_run=true", json={"type": "limited", "payload": {}}, headers=ANN
    )
    assert (missing_field.status_code, dry_missing.status_code) == (422, 422)
    assert unknown.status_code == 422
    assert flow.repo.jobs == []


# ------------------------------------------------------------------------------------- 429
def test_a_rate_limit_that_rejects_answers_429_then_the_same_key_succeeds(
    client: TestClient, flow: FlowFakes
) -> None:
    headers = {**ANN, "Idempotency-Key": "k-1"}
    first = client.post("/jobs", json={"type": "rated"}, headers=headers)
    assert first.status_code == 202

    refused = client.post(
        "/jobs", json={"type": "rated"}, headers={**ANN, "Idempotency-Key": "k-2"}
    )
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert "calls" in error_detail(refused)
    assert len(flow.repo.jobs) == 1
    # another owner has a bucket of its own
    assert client.post("/jobs", json={"type": "rated"}, headers=BOB).status_code == 202

    # the replay of the stored submit is not limited; after Retry-After the refused one is
    assert (
        client.post("/jobs", json={"type": "rated"}, headers=headers).status_code == 200
    )
    flow.clock.advance(timedelta(seconds=int(refused.headers["retry-after"])))
    again = client.post(
        "/jobs", json={"type": "rated"}, headers={**ANN, "Idempotency-Key": "k-2"}
    )
    assert again.status_code == 202
    assert [job.status for job in flow.repo.jobs] == [JobStatus.QUEUED] * 3
