"""A job longer than one invocation, end to end on the local stack (issue 16.5, "Done when"): a
40-minute `steps` job (2,400 one-second steps), time-compressed (steps of 5 ms, a worker Timeout
of 10 s instead of 120 s), runs as a chain of invocations, survives a worker killed in the middle
(its successor starts from the last checkpoint, not from 0), and succeeds once.

The worker is killed the way Lambda kills an environment: its checkpoint write reaches DynamoDB
and the invocation dies (`InvocationKilled`), so its batch is not deleted and the message comes
back after the (scaled) visibility timeout.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jobline import bootstrap
from jobline_local.poller import InvocationKilled
from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack
from jobline_local.template import load_template

from tests.support.faults import FaultInjector, Kill, mentions

WORKER_TIMEOUT_S = 10
VISIBILITY_S = 12
STEPS = 2400
STEP_S = 0.005
WAIT_S = 240.0


def compressed_template() -> dict[str, Any]:
    """template.yaml with the workers' Timeout and the jobs queues' visibility scaled down."""
    template = load_template()
    resources = template["Resources"]
    for worker in ("WorkerFunction", "LongWorkerFunction"):
        resources[worker]["Properties"]["Timeout"] = WORKER_TIMEOUT_S
    for queue in ("JobsQueue", "LongJobsQueue"):
        resources[queue]["Properties"]["VisibilityTimeout"] = VISIBILITY_S
    return template


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    # A margin that fits the compressed invocation (the lanes keep the template's budgets)
    monkeypatch.setenv("JOBLINE_DEADLINE_MARGIN_MS", "2000")
    monkeypatch.setenv("JOBLINE_PROGRESS_INTERVAL_S", "0.5")
    settings = LocalSettings(
        host="127.0.0.1",
        api_port=0,
        moto_port=0,
        prefix=f"jobline-long-{uuid.uuid4().hex[:8]}",
        poll_wait_seconds=1,
        shutdown_timeout_seconds=5,
        state_file=None,
    )
    with LocalStack(
        settings, set_env=monkeypatch.setenv, template=compressed_template()
    ) as local:
        yield local


def test_a_forty_minute_job_runs_as_a_chain_of_invocations_and_survives_a_killed_worker(
    stack: LocalStack,
) -> None:
    # Given the functions' DynamoDB client, whose third checkpoint write kills its invocation
    # once DynamoDB has applied it
    faults = FaultInjector(seed=1)
    kill = faults.script(
        Kill(InvocationKilled, after_send=True),
        "dynamodb.UpdateItem",
        nth=3,
        where=mentions('"checkpoint"'),
    )
    faults.attach(bootstrap.dynamodb_client())
    try:
        with httpx.Client(
            base_url=stack.api_url, headers={"X-Dev-User": "alice"}, timeout=10
        ) as client:
            # When a 40-minute job (time-compressed) is submitted
            submitted = client.post(
                "/jobs",
                json={
                    "type": "steps",
                    "payload": {"steps": STEPS, "step_seconds": STEP_S},
                },
            )
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            deadline = time.monotonic() + WAIT_S
            job = client.get(f"/jobs/{job_id}").json()
            while job["status"] not in ("succeeded", "failed", "cancelled"):
                assert time.monotonic() < deadline, f"still {job['status']}: {job}"
                time.sleep(1)
                job = client.get(f"/jobs/{job_id}").json()
    finally:
        faults.detach()

    # Then the worker was killed mid-way, and the job still succeeded once, counting every step
    assert kill.fired is not None
    assert job["status"] == "succeeded", job
    assert job["result"]["steps"] == STEPS
    # As a chain: every invocation started where the one before stopped or last saved its place
    starts = job["result"]["starts"]
    assert len(starts) >= 3, starts
    assert starts[0] == 0 and 0 not in starts[1:], starts
    assert starts == sorted(starts), starts
    # And one lost attempt (the killed worker's), then the attempt that finished: continuations
    # are not attempts
    assert [
        entry["error"]["type"] if entry["error"] else None for entry in job["history"]
    ] == [
        "WorkerLost",
        None,
    ]
    assert job["attempts"] == 2
