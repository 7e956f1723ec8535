"""Parsing the API's JSON: every field typed, unknown fields and statuses tolerated, wrong shapes
refused with the client's own error."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from jobline_client import (
    Attempt,
    InvalidResponse,
    Job,
    JobError,
    JobStatus,
    JobSummary,
    JobTypeInfo,
    Progress,
)
from starlette.testclient import TestClient

from tests.client.conftest import Stack


def _finished_job_json(api: TestClient, stack: Stack) -> dict[str, Any]:
    job_id = api.post(
        "/jobs", json={"type": "sleep", "payload": {"seconds": 0}}
    ).json()["id"]
    stack.run(job_id)
    stack.report(job_id, 100.0, "done")
    body: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
    return body


def test_a_finished_job_parses_every_field(api: TestClient, stack: Stack) -> None:
    data = _finished_job_json(api, stack)

    job = Job.from_dict(data)

    assert (job.id, job.type, job.status) == (data["id"], "sleep", JobStatus.SUCCEEDED)
    assert job.result == {"slept": 0.0}
    assert job.progress == Progress(
        100.0, "done", datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
    )
    for name in ("created_at", "updated_at", "started_at", "finished_at"):
        value = getattr(job, name)
        assert isinstance(value, datetime) and value.tzinfo is not None, name
    [attempt] = job.history
    assert isinstance(attempt, Attempt)
    assert attempt.finished_at is not None
    assert job.raw is data


def test_fields_the_api_adds_later_are_kept_in_raw(
    api: TestClient, stack: Stack
) -> None:
    data = {
        **_finished_job_json(api, stack),
        "correlation_id": "req-43",
        "labels": {"team": "data"},
    }
    data["history"][0]["worker"] = "w-1"

    job = Job.from_dict(data)

    assert job.raw["correlation_id"] == "req-43"
    assert job.status is JobStatus.SUCCEEDED


def test_a_status_the_api_adds_later_parses_and_is_not_final(
    api: TestClient, stack: Stack
) -> None:
    data = {**_finished_job_json(api, stack), "status": "paused"}

    job = Job.from_dict(data)

    assert job.status == "paused"
    assert job.status.value == "paused"
    assert job.is_final is False


def test_final_statuses() -> None:
    assert {status.value for status in JobStatus if status.is_final} == {
        "succeeded",
        "failed",
        "cancelled",
        "dead_lettered",
        "rejected",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"id": None},
        {"status": 3},
        {"created_at": "yesterday"},
        {"attempts": "1"},
        {"history": {}},
        {"error": "boom"},
        {"progress": {"percent": "half"}},
    ],
)
def test_a_job_of_the_wrong_shape_is_an_invalid_response(
    api: TestClient, stack: Stack, change: dict[str, Any]
) -> None:
    data = {**_finished_job_json(api, stack), **change}

    with pytest.raises(InvalidResponse):
        Job.from_dict(data)


def test_small_values() -> None:
    assert JobError.from_dict(None) is None
    assert JobError.from_dict({"type": "Boom", "message": "m"}) == JobError("Boom", "m")
    assert Progress.from_dict(None) is None
    info = JobTypeInfo.from_dict({"name": "echo", "description": "d", "extra": 1})
    assert (info.name, info.input_schema, info.raw["extra"]) == ("echo", {}, 1)


# ------------------------------------------------------------------ a listing's summaries


def test_a_listing_item_parses_as_a_summary_without_payload_result_or_history(
    api: TestClient, stack: Stack
) -> None:
    # Given a finished job as a listing shows it, and as its own page does
    job = _finished_job_json(api, stack)
    [item] = api.get("/jobs").json()["items"]

    summary = JobSummary.from_dict(item)

    # Then the summary has every field the job has but those three, with the same values
    assert {"payload", "result", "history"}.isdisjoint(item)
    whole = Job.from_dict(job)
    for name in ("id", "type", "status", "attempts", "max_attempts", "progress"):
        assert getattr(summary, name) == getattr(whole, name), name
    assert (summary.finished_at, summary.error_truncated) == (whole.finished_at, False)
    assert summary.is_final and summary.raw is item


@pytest.mark.parametrize(
    "change", [{"error_truncated": "yes"}, {"status": None}, {"progress": []}]
)
def test_a_summary_of_the_wrong_shape_is_an_invalid_response(
    api: TestClient, stack: Stack, change: dict[str, Any]
) -> None:
    _finished_job_json(api, stack)
    [item] = api.get("/jobs").json()["items"]

    with pytest.raises(InvalidResponse):
        JobSummary.from_dict({**item, **change})
