"""POST /jobs/{id}/cancel and /retry over the HTTP API."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from jobline.errors import StorageUnavailable
from jobline.models import Attempt, Job, JobError, JobStatus, Progress

from tests.support.fakes import (
    START,
)
from tests.unit.api.calls import (
    ANN,
    BOB,
    UNKNOWN_ID,
    Fakes,
    error_detail,
    submit_echo,
)

# -------------------------------------------------------------------------- cancel


def test_cancel_then_cancel_again(client: TestClient, fakes: Fakes) -> None:
    job_id = submit_echo(client).json()["id"]

    cancelled = client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    again = client.post(f"/jobs/{job_id}/cancel", headers=ANN)

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert again.status_code == 409
    assert "cancelled" in error_detail(again)
    assert [job.status for job in fakes[1].jobs] == [JobStatus.CANCELLED]


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nope"])
def test_cancel_unknown_job_is_404(client: TestClient, job_id: str) -> None:
    response = client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    assert response.status_code == 404
    assert error_detail(response)


def _put_running(fakes: Fakes, job_id: str) -> None:
    """Move a submitted job to running, as a worker's claim would."""
    repo = fakes[1]
    job = repo.get(job_id)
    assert job is not None
    repo.put(
        job.model_copy(
            update={
                "status": JobStatus.RUNNING,
                "attempts": 1,
                "started_at": START,
                "lease_until": START + timedelta(minutes=2),
                "run_after": None,
            }
        )
    )


def test_cancel_of_a_running_job_is_accepted_as_a_request(
    client: TestClient, fakes: Fakes
) -> None:
    # Given ann's job, running in a worker
    job_id = submit_echo(client).json()["id"]
    _put_running(fakes, job_id)

    # When she cancels it
    response = client.post(f"/jobs/{job_id}/cancel", headers=ANN)

    # Then it is accepted (202): still running, with the request recorded
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["cancel_requested_at"], body["finished_at"]) == (
        "running",
        "2025-01-15T12:00:01Z",
        None,
    )
    [stored] = fakes[1].jobs
    assert stored.cancel_requested_at == START + timedelta(seconds=1)

    # And GET shows the request too
    assert client.get(f"/jobs/{job_id}", headers=ANN).json() == body


def test_get_shows_progress_and_history(client: TestClient, fakes: Fakes) -> None:
    # Given ann's job on its second attempt, the first having failed
    job_id = submit_echo(client).json()["id"]
    repo = fakes[1]
    job = repo.get(job_id)
    assert job is not None
    repo.put(
        job.model_copy(
            update={
                "status": JobStatus.RUNNING,
                "attempts": 2,
                "progress": Progress(
                    percent=42.5, message="half way", updated_at=START
                ),
                "history": (
                    Attempt(
                        attempt=1,
                        started_at=START,
                        finished_at=START + timedelta(seconds=2),
                        error=JobError(type="Boom", message="first try"),
                        request_id="req-1",
                        duration_ms=2000,
                    ),
                ),
            }
        )
    )

    # When she reads it
    body = client.get(f"/jobs/{job_id}", headers=ANN).json()

    # Then progress and every attempt are shown exactly
    assert body["progress"] == {
        "percent": 42.5,
        "message": "half way",
        "updated_at": "2025-01-15T12:00:00Z",
    }
    assert body["history"] == [
        {
            "run": 1,
            "attempt": 1,
            "started_at": "2025-01-15T12:00:00Z",
            "finished_at": "2025-01-15T12:00:02Z",
            "error": {"type": "Boom", "message": "first try"},
            "request_id": "req-1",
            "duration_ms": 2000,
        }
    ]


# --------------------------------------------------------------------------- retry


def test_retry_requeues_a_cancelled_job(client: TestClient, fakes: Fakes) -> None:
    _, repo, queue = fakes
    # Given ann's cancelled job
    job_id = submit_echo(client).json()["id"]
    client.post(f"/jobs/{job_id}/cancel", headers=ANN)

    # When she retries it
    response = client.post(f"/jobs/{job_id}/retry", headers=ANN)

    # Then it is queued again with a fresh budget, and a new message is on the queue
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["attempts"], body["finished_at"]) == (
        "queued",
        0,
        None,
    )
    assert [s.message.job_id for s in queue.sent] == [job_id, job_id]
    assert [j.status for j in repo.jobs] == [JobStatus.QUEUED]

    # And retrying the queued job is a conflict
    again = client.post(f"/jobs/{job_id}/retry", headers=ANN)
    assert again.status_code == 409
    assert "queued" in error_detail(again)


@pytest.mark.parametrize("job_id", [UNKNOWN_ID, "nope"])
def test_retry_unknown_job_is_404(client: TestClient, job_id: str) -> None:
    response = client.post(f"/jobs/{job_id}/retry", headers=ANN)
    assert response.status_code == 404
    assert error_detail(response)


def test_retry_of_another_callers_job_is_404(client: TestClient) -> None:
    job_id = submit_echo(client).json()["id"]
    client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    assert client.post(f"/jobs/{job_id}/retry", headers=BOB).status_code == 404


def test_retry_during_a_queue_outage_is_queued(
    client: TestClient, fakes: Fakes
) -> None:
    _, repo, queue = fakes
    # Given ann's cancelled job and an SQS outage
    job_id = submit_echo(client).json()["id"]
    client.post(f"/jobs/{job_id}/cancel", headers=ANN)
    queue.fail_with = "ServiceUnavailable"

    # When she retries it, then it is queued: the outbox sends its message once SQS is back
    response = client.post(f"/jobs/{job_id}/retry", headers=ANN)
    assert response.status_code == 200
    assert [j.status for j in repo.jobs] == [JobStatus.QUEUED]


def test_a_submit_whose_store_does_not_answer_is_503_with_the_job_id(
    client: TestClient, fakes: Fakes
) -> None:
    def lost_create(job: Job, now: datetime, *, token: str | None = None) -> None:
        raise StorageUnavailable("create: ReadTimeoutError")

    fakes[1].create = lost_create  # type: ignore[method-assign]

    response = submit_echo(client, headers={**ANN, "Idempotency-Key": "order-1"})

    assert response.status_code == 503
    body = response.json()
    assert body["job_id"] and body["job_id"] in body["detail"]
    assert response.headers["Location"] == f"/jobs/{body['job_id']}"
