"""The sweep command under moto: jobs stored `queued` with a dispatch mark whose message never left
(the outbox never saw their writes: here, the stream is simply not polled) are found by a scan and
sent through the dispatch use case; young marks, claimed and cancelled jobs are left alone."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient
from jobline.clock import utcnow
from jobline.config import get_settings
from jobline.models import JobMessage
from jobline_api.app import create_app
from jobline_ops.environment import Environment
from jobline_ops.sweep import Sweep, SweepReport, build_sweep, main
from jobline_worker.handler import lambda_handler

from tests.conftest import FakeLambdaContext, MotoStack, sqs_event

ANN = {"X-Dev-User": "ann"}
LATER = timedelta(minutes=16)
"""Past the default minimum age (15 minutes)."""


@pytest.fixture
def client(moto_stack: MotoStack) -> Iterator[TestClient]:
    with TestClient(create_app(allow_dev_identity=True)) as test_client:
        yield test_client


def submit(client: TestClient, payload: Any = None) -> str:
    response = client.post(
        "/jobs", json={"type": "echo", "payload": payload or {"n": 1}}, headers=ANN
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def status_of(client: TestClient, job_id: str) -> str:
    response = client.get(f"/jobs/{job_id}", headers=ANN)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def queued_messages(stack: MotoStack) -> list[dict[str, Any]]:
    """Every message on the jobs queue, received without running the outbox first."""
    messages: list[dict[str, Any]] = []
    while batch := stack.sqs.receive_message(
        QueueUrl=stack.queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def job_ids(messages: list[dict[str, Any]]) -> list[str]:
    return sorted(JobMessage.model_validate_json(m["Body"]).job_id for m in messages)


def sweep_at(
    stack: MotoStack, at: datetime, out: io.StringIO, sqs: Any = None, **options: Any
) -> Sweep:
    """The command as `make sweep` builds it, on moto, with its clock at `at`."""
    env = Environment(
        sqs=sqs or stack.sqs, settings=get_settings(), dynamodb=stack.dynamodb
    )
    return build_sweep(env, clock=lambda: at, out=out, **options)


class RefusingSqs:
    """The moto SQS client, with SendMessageBatch failing as an SQS outage does."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def send_message_batch(self, **request: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "InternalError", "Message": "down"}}, "SendMessageBatch"
        )


# ---------------------------------------------------------------------------- tests
def test_a_job_whose_message_never_left_is_sent_and_then_runs(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given two stored jobs whose writes the outbox never saw: nothing is on the queue
    ids = sorted([submit(client), submit(client, {"n": 2})])
    assert queued_messages(moto_stack) == []
    out = io.StringIO()

    # When the sweep runs 16 minutes later
    report = sweep_at(moto_stack, utcnow() + LATER, out).run(min_age_s=900)

    # Then both jobs were found and their messages sent, with their correlation ids
    assert report == SweepReport(scanned=2, found=2, dispatched=2, failed=0)
    messages = queued_messages(moto_stack)
    assert job_ids(messages) == ids
    assert all("correlation_id" in m["MessageAttributes"] for m in messages)
    lines = out.getvalue().splitlines()
    assert sorted(line.split()[1] for line in lines[:2]) == [f"job={i}" for i in ids]
    assert all(line.startswith("dispatched ") for line in lines[:2])
    assert lines[-1] == (
        f"sweep {moto_stack.table}: scanned=2 found=2 dispatched=2 failed=0 "
        "(marks older than 900 s)"
    )
    # And the worker runs them to success, which clears their marks: a second sweep finds none
    event = sqs_event(messages, moto_stack.provisioned.queue_arns["JobsQueue"])
    assert lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert [status_of(client, job_id) for job_id in ids] == ["succeeded"] * 2
    again = sweep_at(moto_stack, utcnow() + LATER, io.StringIO()).run(min_age_s=900)
    assert (again.found, again.dispatched) == (0, 0)


def test_young_marks_claimed_and_cancelled_jobs_are_left_alone(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given a job run to success through the outbox and the worker
    done = submit(client)
    event = sqs_event(
        moto_stack.receive(), moto_stack.provisioned.queue_arns["JobsQueue"]
    )
    lambda_handler(event, FakeLambdaContext())
    assert status_of(client, done) == "succeeded"
    # And a job cancelled while queued, and one just submitted (neither dispatched)
    cancelled = submit(client)
    assert client.post(f"/jobs/{cancelled}/cancel", headers=ANN).status_code == 200
    young = submit(client)

    # When the sweep runs now, only marks older than 15 minutes count: none
    now = sweep_at(moto_stack, utcnow(), io.StringIO()).run(min_age_s=900)
    # And 16 minutes later only the queued job is found
    later = sweep_at(moto_stack, utcnow() + LATER, io.StringIO()).run(min_age_s=900)

    # Then
    assert (now.scanned, now.found) == (3, 0)
    assert (later.scanned, later.found, later.dispatched) == (3, 1, 1)
    assert job_ids(queued_messages(moto_stack)) == [young]


def test_a_dry_run_lists_the_jobs_and_sends_nothing(
    moto_stack: MotoStack, client: TestClient
) -> None:
    job_id = submit(client)
    out = io.StringIO()

    report = sweep_at(moto_stack, utcnow() + LATER, out).run(
        min_age_s=900, dry_run=True
    )

    assert report == SweepReport(scanned=1, found=1, dispatched=0, failed=0)
    assert queued_messages(moto_stack) == []
    first, summary = out.getvalue().splitlines()
    assert first.startswith(f"would dispatch job={job_id} owner=ann type=echo waiting=")
    assert summary.endswith("(marks older than 900 s, dry run)")


def test_it_pages_through_the_table_and_stops_at_max(
    moto_stack: MotoStack, client: TestClient
) -> None:
    # Given 25 stranded jobs
    ids = sorted(submit(client, {"n": n}) for n in range(25))
    at = utcnow() + LATER

    # When at most 12 are swept, reading pages of 7 items
    bounded = sweep_at(moto_stack, at, io.StringIO(), page_items=7).run(
        min_age_s=900, max_jobs=12
    )
    sent = job_ids(queued_messages(moto_stack))
    # And then all of them
    full = sweep_at(moto_stack, at, io.StringIO(), page_items=7).run(min_age_s=900)

    # Then 12 messages left, read in two pages; then every job over four pages
    assert (bounded.scanned, bounded.found, bounded.dispatched) == (14, 12, 12)
    assert len(sent) == 12 and set(sent) <= set(ids)
    assert (full.scanned, full.found, full.dispatched) == (25, 25, 25)
    # (the 12 already sent get a second message: the claim makes a duplicate a no-op)
    assert job_ids(queued_messages(moto_stack)) == ids


def test_a_send_the_queue_refuses_is_reported_and_the_job_stays_marked(
    moto_stack: MotoStack, client: TestClient
) -> None:
    job_id = submit(client)
    out = io.StringIO()

    report = sweep_at(
        moto_stack, utcnow() + LATER, out, sqs=RefusingSqs(moto_stack.sqs)
    ).run(min_age_s=900)

    assert report == SweepReport(scanned=1, found=1, dispatched=0, failed=1)
    assert out.getvalue().splitlines()[0].startswith(f"failed         job={job_id} ")
    # And the next sweep, with the queue back, sends it
    retry = sweep_at(moto_stack, utcnow() + LATER, io.StringIO()).run(min_age_s=900)
    assert retry.dispatched == 1
    assert job_ids(queued_messages(moto_stack)) == [job_id]


def test_the_command_line_exit_statuses(
    moto_stack: MotoStack,
    client: TestClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = submit(client)

    # A mark younger than the default minimum age: nothing to do, exit 0
    assert main([]) == 0
    assert "found=0" in capsys.readouterr().out
    # Every mark: the job is sent, exit 0
    assert main(["--min-age", "0"]) == 0
    assert f"job={job_id}" in capsys.readouterr().out
    assert job_ids(queued_messages(moto_stack)) == [job_id]
    # Usage errors exit 2 through argparse
    with pytest.raises(SystemExit) as usage:
        main(["--max", "0"])
    assert usage.value.code == 2
    # A table that cannot be read: exit 2 with the reason
    monkeypatch.setenv("JOBLINE_TABLE_NAME", "no-such-table")
    get_settings.cache_clear()
    assert main(["--min-age", "0"]) == 2
    assert "ResourceNotFoundException" in capsys.readouterr().err
