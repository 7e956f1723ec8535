"""The client's flow-control calls (issue 18, docs/flow-control.md) against the API app over a
fake deployment with a control table: limits, an admin's override, pause and resume, and a dry
run that writes nothing; the async client's the same."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from jobline.flow import Concurrency
from jobline_api.app import create_app
from jobline_client import AsyncClient, Client, InvalidRequest
from jobline_client.errors import ApiError, Unauthorized

from tests.client.conftest import BASE_URL, FAST
from tests.client.test_async_client import run
from tests.client.transports import AppTransport
from tests.support.fakes import (
    CountingHandler,
    FakeClock,
    InMemoryFlowStore,
    job_type_of,
)
from tests.support.services import build_fake_service, build_registry

PER_OWNER = Concurrency(name="per-owner", key="{owner}", limit=1)


class Deployment:
    """A fake deployment whose `limited` type takes one permit per owner; `root` is an admin."""

    def __init__(self) -> None:
        self.store = InMemoryFlowStore()
        limited = replace(
            job_type_of("limited", CountingHandler()), concurrency=(PER_OWNER,)
        )
        self.service, self.repo, self.queue = build_fake_service(
            build_registry([limited]),
            clock=FakeClock(step=timedelta()),
            flow_store=self.store,
        )
        self.app = create_app(
            service_factory=lambda: self.service, allow_dev_identity=True
        )
        self.app.state.admins = ("root",)
        self.app.state.admin_group = None


@pytest.fixture
def deployment() -> Deployment:
    return Deployment()


@pytest.fixture
def test_client(deployment: Deployment) -> Iterator[TestClient]:
    with TestClient(
        deployment.app, base_url=BASE_URL, raise_server_exceptions=False
    ) as client:
        yield client


def client_of(test_client: TestClient, user: str) -> Client:
    return Client(BASE_URL, dev_user=user, transport=AppTransport(test_client), **FAST)


def test_a_dry_run_says_what_a_submit_would_meet_and_writes_nothing(
    deployment: Deployment, test_client: TestClient
) -> None:
    with client_of(test_client, "alice") as alice:
        # When alice asks what a limited submit would meet
        answer = alice.dry_run("limited", {}, priority="high")

        # Then she is told its key, lane and estimates, and nothing was stored
        assert answer["dry_run"] is True
        assert answer["type"] == "limited"
        assert answer["lane"] == "high"
        assert [key["name"] for key in answer["keys"]] == ["per-owner"]
        assert "estimated_start" in answer and "estimated_cost_usd" in answer
        assert list(deployment.repo.jobs) == []
        # And an invalid submit is refused as a submit would be
        with pytest.raises(InvalidRequest):
            alice.dry_run("nope", {})


def test_pause_and_resume_for_the_callers_jobs(
    deployment: Deployment, test_client: TestClient
) -> None:
    with client_of(test_client, "alice") as alice:
        # When alice pauses the type for her own jobs, the limits show the pause
        paused = alice.pause("limited")
        assert (paused["job_type"], paused["everyone"], paused["paused"]) == (
            "limited",
            False,
            True,
        )
        pauses = alice.limits()["pauses"]
        assert [(p["job_type"], p["owner"]) for p in pauses] == [("limited", "alice")]

        # And resuming takes it away, saying how many parked jobs it woke
        resumed = alice.resume("limited")
        assert (resumed["paused"], resumed["woken"]) == (False, 0)
        assert alice.limits()["pauses"] == []

        # And a type the deployment does not have is a clear 404
        with pytest.raises(ApiError) as unknown:
            alice.pause("nope")
        assert unknown.value.status == 404


def test_only_an_admin_overrides_a_limit_or_pauses_for_everyone(
    deployment: Deployment, test_client: TestClient
) -> None:
    with (
        client_of(test_client, "alice") as alice,
        client_of(test_client, "root") as root,
    ):
        # A non-admin is refused, and nothing changes
        with pytest.raises(Unauthorized) as refused:
            alice.set_limit("per-owner", 3)
        assert refused.value.status == 403
        with pytest.raises(Unauthorized):
            alice.pause("limited", everyone=True)
        assert deployment.store.settings().overrides == {}

        # An admin's override is in force, and shown
        root.set_limit("per-owner", 3)
        assert deployment.store.settings().overrides == {"per-owner": 3}
        root.set_limit("per-owner", None)
        assert deployment.store.settings().overrides == {}
        everyone = root.pause("limited", everyone=True)
        assert everyone["everyone"] is True
        assert [p["owner"] for p in root.limits()["pauses"]] == [None]
        root.resume("limited", everyone=True)
        assert deployment.store.settings().pauses == {}


def test_the_async_client_has_the_same_calls(deployment: Deployment) -> None:
    async def scenario() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=deployment.app)
        async with AsyncClient(
            BASE_URL, dev_user="alice", transport=transport, **FAST
        ) as alice:
            answer = await alice.dry_run("limited", {})
            await alice.pause("limited")
            limits = await alice.limits()
            await alice.resume("limited")
            return {"dry_run": answer, "limits": limits}

    # (the app's environment attached as its lifespan would)
    with TestClient(deployment.app, base_url=BASE_URL):
        seen = run(scenario())
    assert seen["dry_run"]["type"] == "limited"
    assert [p["owner"] for p in seen["limits"]["pauses"]] == ["alice"]
