"""What `make run` keeps across a restart (`jobline_local.state`): jobs queued or running at the
stop run after the restart, finished jobs and waiting submissions are kept, `fresh` starts clean,
and a stack without a state file says what it dropped."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobline.aws.items import job_to_item
from jobline.limits import INLINE_DATA_BYTES
from jobline.models import Job, JobStatus
from jobline_local.settings import LocalSettings
from jobline_local.snapshot import Snapshot, save
from jobline_local.stack import LocalStack, LocalStackError
from jobline_local.template import load_template

OWNER = "alice"


def wait_for(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """Poll `check` until it returns something truthy or the time is up; return its last value."""
    deadline = time.monotonic() + timeout_s
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.05)
        value = check()
    return value


def without_consumers() -> dict[str, Any]:
    """template.yaml with no worker or ingest event source: jobs stay queued, submissions stay
    on the ingest queue (as if the stack stopped before they were taken)."""
    template = copy.deepcopy(load_template())
    for function in ("WorkerFunction", "IngestFunction"):
        del template["Resources"][function]["Properties"]["Events"]
    return template


@contextmanager
def running(
    monkeypatch: pytest.MonkeyPatch,
    state_file: Path | None,
    template: dict[str, Any] | None = None,
    **changes: Any,
) -> Iterator[tuple[LocalStack, httpx.Client]]:
    """A whole stack keeping its state in `state_file`, and a client calling its API as alice."""
    settings = LocalSettings(
        host="127.0.0.1",
        api_port=0,
        moto_port=0,
        prefix=f"jobline-state-{uuid.uuid4().hex[:8]}",
        state_file=state_file,
        **changes,
    )
    with (
        LocalStack(settings, set_env=monkeypatch.setenv, template=template) as stack,
        httpx.Client(
            base_url=stack.api_url, headers={"X-Dev-User": OWNER}, timeout=5
        ) as client,
    ):
        yield stack, client


def job_of(client: httpx.Client, job_id: str) -> dict[str, Any]:
    answer = client.get(f"/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def succeeded(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job = job_of(client, job_id)
    return job if job["status"] == "succeeded" else None


def submit_echo(client: httpx.Client, n: int) -> str:
    answer = client.post("/jobs", json={"type": "echo", "payload": {"n": n}})
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def test_jobs_queued_at_the_stop_run_after_the_restart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"

    # Given a stack that ran one job to success and stopped
    with running(monkeypatch, state_file) as (stack, client):
        done = submit_echo(client, 1)
        assert wait_for(lambda: succeeded(client, done))
    assert state_file.exists()
    assert stack.kept is not None and stack.kept.jobs == {"succeeded": 1}

    # And a restart of it whose worker and ingest function take nothing, stopped with a job
    # queued and a submission waiting on the ingest queue
    with running(monkeypatch, state_file, without_consumers()) as (stack, client):
        assert stack.restored is not None and stack.restored.jobs == {"succeeded": 1}
        assert not state_file.exists()  # the state lives in the stack until the stop
        assert job_of(client, done)["status"] == "succeeded"
        waiting = submit_echo(client, 2)
        assert wait_for(
            lambda: stack.sqs.receive_message(
                QueueUrl=stack.queue_url, VisibilityTimeout=0
            ).get("Messages")
        )  # dispatched by the outbox: only the worker is missing
        stack.sqs.send_message(
            QueueUrl=stack.provisioned.queue_urls["IngestQueue"],
            MessageBody='{"type": "echo", "payload": {"n": 3}, "owner": "alice", '
            '"idempotency_key": "kept-1"}',
        )
    assert stack.kept is not None
    assert stack.kept.jobs == {"succeeded": 1, "queued": 1}
    assert stack.kept.messages == 1

    # When the stack starts again with every consumer
    with running(monkeypatch, state_file) as (stack, client):
        # Then the queued job runs, the waiting submission becomes a job and runs, and the
        # finished job is there as it was (not run again)
        assert wait_for(lambda: succeeded(client, waiting))["attempts"] == 1
        ingested = wait_for(
            lambda: [
                job
                for job in client.get("/jobs").json()["items"]
                if job["id"] not in (done, waiting) and job["status"] == "succeeded"
            ]
        )
        assert len(ingested) == 1
        first = job_of(client, done)
        assert (first["status"], first["attempts"], first["result"]) == (
            "succeeded",
            1,
            {"n": 1},
        )
        # And the caller's listing (an index the restore rebuilt) finds all three
        listed = {job["id"] for job in client.get("/jobs").json()["items"]}
        assert {done, waiting, ingested[0]["id"]} <= listed


def test_a_job_running_at_the_stop_is_taken_over_after_the_restart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a saved state holding a job that was running when the stack stopped, its
    # invocation's lease over (the stop ended it) and its message in flight (not in the file)
    now = datetime.now(UTC)
    job = Job(
        id=uuid.uuid4().hex,
        owner=OWNER,
        type="echo",
        status=JobStatus.RUNNING,
        payload={"was": "running"},
        attempts=1,
        created_at=now - timedelta(minutes=5),
        updated_at=now - timedelta(minutes=4),
        started_at=now - timedelta(minutes=4),
        lease_until=now - timedelta(minutes=2),
        attempt_request_id="the-stopped-invocation",
    )
    state_file = tmp_path / "state.json"
    save(Snapshot(tables={"JobsTable": [job_to_item(job)]}, queues={}), state_file)

    # When the stack starts from it
    with running(monkeypatch, state_file) as (stack, client):
        # Then the worker gets the job's message again, as SQS would redeliver it, takes the job
        # over and runs it: a second attempt, the first one recorded as lost
        assert stack.restored is not None
        assert stack.restored.jobs == {"running": 1}
        finished = wait_for(lambda: succeeded(client, job.id))
    assert finished["result"] == {"was": "running"}
    assert finished["attempts"] == 2
    assert len(finished["history"]) == 2


def test_fresh_starts_clean_and_discards_the_saved_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a stack that stopped with a job
    state_file = tmp_path / "state.json"
    with running(monkeypatch, state_file) as (_, client):
        old = submit_echo(client, 1)
        assert wait_for(lambda: succeeded(client, old))

    # When it starts again with `fresh`
    with running(monkeypatch, state_file, fresh=True) as (stack, client):
        # Then nothing was restored, and the old state is gone for good
        assert stack.restored is None
        assert client.get(f"/jobs/{old}").status_code == 404
        assert not state_file.exists()
    # And the stop saved the new (empty) state
    assert stack.kept is not None and stack.kept.job_count == 0
    assert state_file.exists()


def test_a_state_file_it_cannot_read_stops_the_start_and_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a state file that is not one
    state_file = tmp_path / "state.json"
    state_file.write_text("not json")

    # When the stack starts from it
    with pytest.raises(LocalStackError) as failure, running(monkeypatch, state_file):
        pass  # pragma: no cover - the start fails

    # Then the error names the file and how to start clean, and the file is still there
    message = str(failure.value)
    assert str(state_file) in message
    assert "JOBLINE_LOCAL_FRESH=true" in message and "FRESH=1" in message
    assert state_file.read_text() == "not json"


def test_without_a_state_file_the_stop_counts_the_jobs_it_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a stack keeping no state, with a job that ran and one delayed for a minute
    with running(monkeypatch, None) as (stack, client):
        ran = submit_echo(client, 1)
        assert wait_for(lambda: succeeded(client, ran))
        later = client.post(
            "/jobs",
            json={"type": "echo", "payload": {}, "delay_seconds": 60},
        )
        assert later.status_code == 202

    # When it stops, it says what is lost: both jobs, one of them still to run
    assert stack.kept is not None
    assert stack.kept.jobs == {"succeeded": 1, "queued": 1}
    assert stack.kept.unfinished == 1


def test_a_jobs_large_payload_and_result_survive_the_restart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    payload = {"data": "x" * (INLINE_DATA_BYTES * 2)}

    # Given a stack that ran a job whose payload and result are in the data bucket, and stopped
    with running(monkeypatch, state_file) as (_, client):
        answer = client.post("/jobs", json={"type": "echo", "payload": payload})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        assert wait_for(lambda: succeeded(client, job_id))

    # When it starts again
    with running(monkeypatch, state_file) as (stack, client):
        assert stack.restored is not None and stack.restored.jobs == {"succeeded": 1}
        # Then the job still links to both, and the links bring them back
        job = job_of(client, job_id)
        for name in ("payload", "result"):
            assert job[name] is None
            fetched = httpx.get(job[f"{name}_url"], timeout=5)
            assert fetched.status_code == 200
            assert fetched.json() == payload
