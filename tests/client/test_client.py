"""`Client` against the real API app in-process: every method, paging, every error, retries."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from jobline.limits import MAX_PAYLOAD_BYTES
from jobline_client import (
    ApiError,
    Attempt,
    Client,
    Conflict,
    InvalidRequest,
    Job,
    JobError,
    JoblineClientError,
    JobNotFound,
    JobStatus,
    JobSummary,
    ServiceUnavailable,
    Unauthorized,
    WaitTimeout,
)
from starlette.testclient import TestClient

from tests.client.conftest import BASE_URL, FAIL_TYPE, FAST, OWNER, Stack
from tests.client.transports import (
    Answer,
    AppTransport,
    LoseAnswer,
    Refuse,
    ScriptedTransport,
)

UNKNOWN_ID = "0" * 32


def _api_job(api: TestClient, job_id: str) -> Any:
    response = api.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    return response.json()


# ------------------------------------------------------------------------------- submit


def test_submit_returns_the_queued_job_with_every_field(
    client: Client, api: TestClient
) -> None:
    # When alice submits an echo job with a delay and an attempts budget
    job = client.submit("echo", {"hello": "world"}, delay_seconds=5, max_attempts=4)

    # Then she gets the queued job, every field typed
    assert isinstance(job, Job)
    assert (job.type, job.status, job.payload) == (
        "echo",
        JobStatus.QUEUED,
        {"hello": "world"},
    )
    assert (job.attempts, job.max_attempts, job.result, job.error) == (0, 4, None, None)
    assert job.created_at == datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
    assert job.updated_at == job.created_at
    assert job.run_after == datetime(2025, 1, 15, 12, 0, 5, tzinfo=UTC)
    assert (job.started_at, job.finished_at, job.cancel_requested_at) == (None,) * 3
    assert (job.progress, job.history, job.is_final) == (None, (), False)
    # And `raw` is exactly the API's JSON
    assert job.raw == _api_job(api, job.id)


def test_submit_always_sends_an_idempotency_key(
    client: Client, scripted: ScriptedTransport
) -> None:
    client.submit("echo", {})
    client.submit("echo", {})

    keys = [sent.headers.get("idempotency-key") for sent in scripted.sent]
    assert all(keys) and keys[0] != keys[1]


def test_submit_with_the_same_key_returns_the_original_job(
    client: Client, stack: Stack
) -> None:
    first = client.submit("echo", {"n": 1}, idempotency_key="order-42")

    again = client.submit("echo", {"n": 1}, idempotency_key="order-42")

    assert again == first
    assert stack.job_count() == 1


def test_the_same_key_with_another_body_is_a_conflict(client: Client) -> None:
    client.submit("echo", {"n": 1}, idempotency_key="order-42")

    with pytest.raises(Conflict) as raised:
        client.submit("echo", {"n": 2}, idempotency_key="order-42")

    assert raised.value.status == 409
    assert "order-42" in raised.value.message


# ---------------------------------------------------------------------------- get, list


def test_get_returns_the_job_the_worker_ran(client: Client, stack: Stack) -> None:
    # Given a submitted job the worker ran
    submitted = client.submit("echo", {"hello": "world"})
    stack.run(submitted.id)

    # When alice reads it back
    job = client.get(submitted.id)

    # Then it succeeded with its payload as result, and one attempt in its history
    assert (job.status, job.result, job.attempts, job.is_final) == (
        JobStatus.SUCCEEDED,
        {"hello": "world"},
        1,
        True,
    )
    assert isinstance(job.started_at, datetime)
    assert isinstance(job.finished_at, datetime)
    [attempt] = job.history
    assert isinstance(attempt, Attempt)
    assert (attempt.attempt, attempt.error, attempt.request_id) == (
        1,
        None,
        "req-msg-1",
    )
    assert isinstance(attempt.duration_ms, int)


def test_a_failed_job_carries_its_error(client: Client, stack: Stack) -> None:
    submitted = client.submit(FAIL_TYPE, {})
    stack.run(submitted.id)

    job = client.get(submitted.id)

    assert job.status is JobStatus.FAILED
    assert job.error == JobError("PermanentJobError", "it was never going to work")
    assert job.history[0].error == job.error


def test_list_follows_the_cursor_across_pages(
    client: Client, scripted: ScriptedTransport
) -> None:
    # Given five jobs
    ids = [client.submit("echo", {"n": n}).id for n in range(5)]
    scripted.sent.clear()

    # When alice lists them two per page
    listed = [job.id for job in client.list(page_size=2)]

    # Then she gets every job once, newest first, over three pages chained by the cursor
    assert listed == ids[::-1]
    pages = [sent.query for sent in scripted.sent]
    assert [page["limit"] for page in pages] == ["2", "2", "2"]
    assert "cursor" not in pages[0]
    assert pages[1]["cursor"] and pages[2]["cursor"] != pages[1]["cursor"]


def test_list_stops_at_the_limit(client: Client, scripted: ScriptedTransport) -> None:
    ids = [client.submit("echo", {"n": n}).id for n in range(5)]
    scripted.sent.clear()

    listed = [job.id for job in client.list(limit=3, page_size=2)]

    assert listed == ids[::-1][:3]
    assert [sent.query["limit"] for sent in scripted.sent] == ["2", "1"]


def test_list_is_lazy_and_asks_for_big_pages(
    client: Client, scripted: ScriptedTransport
) -> None:
    client.submit("echo", {})
    scripted.sent.clear()

    jobs = client.list()
    assert scripted.sent == []

    assert len(list(jobs)) == 1
    assert [sent.query for sent in scripted.sent] == [{"limit": "100"}]


def test_list_yields_summaries_and_get_reads_the_job_whole(client: Client) -> None:
    submitted = client.submit("echo", {"big": "x" * 1000})

    [listed] = client.list()

    assert isinstance(listed, JobSummary) and listed.id == submitted.id
    assert not hasattr(listed, "payload")
    assert client.get(listed.id).payload == {"big": "x" * 1000}


def test_list_filters_by_status_and_type(client: Client, stack: Stack) -> None:
    done = client.submit("echo", {})
    stack.run(done.id)
    queued_echo = client.submit("echo", {})
    queued_sleep = client.submit("sleep", {"seconds": 1})

    assert [j.id for j in client.list(status="succeeded")] == [done.id]
    assert [j.id for j in client.list(status=JobStatus.QUEUED, type="echo")] == [
        queued_echo.id
    ]
    assert [j.id for j in client.list(type="sleep")] == [queued_sleep.id]
    assert list(client.list(status="rejected")) == []


def test_list_page_returns_one_page_and_its_cursor(client: Client) -> None:
    for n in range(3):
        client.submit("echo", {"n": n})

    first = client.list_page(limit=2)
    rest = client.list_page(limit=2, cursor=first.next_cursor)

    assert len(first.items) == 2 and first.next_cursor
    assert len(rest.items) == 1 and rest.next_cursor is None


# ------------------------------------------------------------------------- cancel, retry


def test_cancel_a_queued_job(client: Client) -> None:
    job = client.submit("echo", {})

    cancelled = client.cancel(job.id)

    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at is not None


def test_cancel_a_running_job_requests_it(client: Client, stack: Stack) -> None:
    job = client.submit("sleep", {"seconds": 30})
    stack.start(job.id)

    requested = client.cancel(job.id)

    assert requested.status is JobStatus.RUNNING
    assert isinstance(requested.cancel_requested_at, datetime)


def test_cancel_a_finished_job_is_a_conflict(client: Client, stack: Stack) -> None:
    job = client.submit("echo", {})
    stack.run(job.id)

    with pytest.raises(Conflict) as raised:
        client.cancel(job.id)

    assert raised.value.status == 409
    assert "succeeded" in raised.value.message


def test_retry_a_failed_job_queues_it_again(client: Client, stack: Stack) -> None:
    job = client.submit(FAIL_TYPE, {})
    stack.run(job.id)

    again = client.retry(job.id)

    assert (again.status, again.attempts, again.error) == (JobStatus.QUEUED, 0, None)
    assert len(again.history) == 1


def test_retry_a_queued_job_is_a_conflict(client: Client) -> None:
    job = client.submit("echo", {})

    with pytest.raises(Conflict):
        client.retry(job.id)


# ---------------------------------------------------------------------------- job types


def test_job_types_lists_each_type_with_its_schema(client: Client) -> None:
    types = {info.name: info for info in client.job_types()}

    assert {"echo", "sleep", "http.request", FAIL_TYPE} <= set(types)
    sleep = types["sleep"]
    assert sleep.description
    assert sleep.input_schema["required"] == ["seconds"]
    assert sleep.raw["name"] == "sleep"


# --------------------------------------------------------------------------------- wait


def test_wait_reports_every_change_and_returns_the_final_job(
    stack: Stack, api: TestClient
) -> None:
    # Given a job that moves on between polls: queued, running, 50%, 50% again, succeeded
    job_id = ""
    steps = [
        lambda: None,
        lambda: stack.start(job_id),
        lambda: stack.report(job_id, 50.0, "half"),
        lambda: None,
        lambda: stack.finish(job_id, result={"ok": True}),
    ]

    def before(request: httpx.Request) -> None:
        if request.method == "GET" and steps:
            steps.pop(0)()

    transport = ScriptedTransport(AppTransport(api), before=before)
    seen: list[tuple[str, int, float | None]] = []
    with Client(BASE_URL, dev_user=OWNER, transport=transport, **FAST) as client:
        job_id = client.submit("sleep", {"seconds": 1}).id

        # When alice waits for it
        job = client.wait(
            job_id,
            timeout=10,
            on_progress=lambda j: seen.append(
                (j.status.value, j.attempts, j.progress.percent if j.progress else None)
            ),
        )

    # Then on_progress saw each change once (not the unchanged poll), and wait returned the end
    assert seen == [
        ("queued", 0, None),
        ("running", 1, None),
        ("running", 1, 50.0),
        ("succeeded", 1, 50.0),
    ]
    assert (job.status, job.result) == (JobStatus.SUCCEEDED, {"ok": True})
    assert job.progress is not None
    assert (job.progress.percent, job.progress.message) == (50.0, "half")


@pytest.mark.parametrize(
    "status", ["succeeded", "failed", "cancelled", "dead_lettered", "rejected"]
)
def test_wait_ends_at_every_final_state(
    client: Client, stack: Stack, status: str
) -> None:
    job = client.submit("echo", {})
    stack.finish(job.id, status)

    assert client.wait(job.id, timeout=10).status == status


def test_wait_times_out_with_the_last_job(client: Client) -> None:
    job = client.submit("echo", {})

    with pytest.raises(WaitTimeout) as raised:
        client.wait(job.id, timeout=0.05)

    assert raised.value.job.id == job.id
    assert raised.value.job.status is JobStatus.QUEUED
    assert "queued" in str(raised.value)


def test_wait_for_an_unknown_job_is_not_found(client: Client) -> None:
    with pytest.raises(JobNotFound):
        client.wait(UNKNOWN_ID, timeout=1)


# ------------------------------------------------------------------------------- errors


def test_an_unknown_id_is_job_not_found(client: Client) -> None:
    with pytest.raises(JobNotFound) as raised:
        client.get(UNKNOWN_ID)

    assert raised.value.status == 404
    assert isinstance(raised.value, ApiError)


@pytest.mark.parametrize("method", ["get", "cancel", "retry"])
def test_every_job_route_maps_404(client: Client, method: str) -> None:
    with pytest.raises(JobNotFound):
        getattr(client, method)("not/a?job")


def test_an_unknown_type_is_an_invalid_request_with_details(client: Client) -> None:
    with pytest.raises(InvalidRequest) as raised:
        client.submit("teleport", {})

    error = raised.value
    assert error.status == 422
    [detail] = error.details
    assert detail["loc"] == ["body", "type"]
    assert "teleport" in detail["msg"]


def test_an_invalid_payload_lists_the_fields(client: Client) -> None:
    with pytest.raises(InvalidRequest) as raised:
        client.submit("sleep", {"seconds": -1})

    assert [d["loc"] for d in raised.value.details] == [["body", "payload", "seconds"]]
    assert "body.payload.seconds" in raised.value.message


def test_a_bad_field_is_an_invalid_request(client: Client) -> None:
    with pytest.raises(InvalidRequest) as raised:
        client.submit("echo", {}, max_attempts=99)

    assert [d["loc"] for d in raised.value.details] == [["body", "max_attempts"]]


def test_a_payload_too_large_is_an_invalid_request(client: Client) -> None:
    with pytest.raises(InvalidRequest) as raised:
        client.submit("echo", {"blob": "x" * MAX_PAYLOAD_BYTES})

    assert raised.value.status == 413
    assert raised.value.details == []


def test_a_tampered_cursor_is_an_invalid_request(client: Client) -> None:
    with pytest.raises(InvalidRequest) as raised:
        client.list_page(cursor="not-a-cursor")

    assert raised.value.status == 400


def test_no_identity_is_unauthorized(scripted: ScriptedTransport) -> None:
    with (
        Client(BASE_URL, transport=scripted, **FAST) as anonymous,
        pytest.raises(Unauthorized) as raised,
    ):
        anonymous.get(UNKNOWN_ID)

    assert raised.value.status == 401


def test_a_token_is_sent_as_a_bearer(scripted: ScriptedTransport) -> None:
    # (only API Gateway's authorizer turns a token into an identity: in-process it is 401)
    with (
        Client(BASE_URL, token="t0k3n", transport=scripted, **FAST) as with_token,
        pytest.raises(Unauthorized),
    ):
        with_token.get(UNKNOWN_ID)

    assert scripted.sent[0].headers["authorization"] == "Bearer t0k3n"
    assert "x-dev-user" not in scripted.sent[0].headers


def test_a_404_outside_a_job_route_is_a_plain_api_error(api: TestClient) -> None:
    transport = AppTransport(api)
    with (
        Client(f"{BASE_URL}/wrong-stage", dev_user=OWNER, transport=transport) as bad,
        pytest.raises(ApiError) as raised,
    ):
        bad.submit("echo", {})

    assert type(raised.value) is ApiError
    assert raised.value.status == 404


def test_another_error_status_is_an_api_error(
    client: Client, scripted: ScriptedTransport
) -> None:
    scripted.faults.append(Answer(500, "internal error"))

    with pytest.raises(ApiError) as raised:
        client.job_types()

    assert (raised.value.status, raised.value.detail) == (500, "internal error")


def test_api_gateway_error_bodies_are_understood() -> None:
    def gateway_401(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "Unauthorized"})

    with (
        Client(BASE_URL, transport=httpx.MockTransport(gateway_401)) as behind_gateway,
        pytest.raises(Unauthorized) as raised,
    ):
        behind_gateway.get(UNKNOWN_ID)

    assert raised.value.detail == "Unauthorized"


def test_a_body_that_is_not_json_is_an_error_of_the_client() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>captive portal</html>")

    with (
        Client(BASE_URL, transport=httpx.MockTransport(html)) as client,
        pytest.raises(JoblineClientError, match="not JSON"),
    ):
        client.get(UNKNOWN_ID)


def test_an_invalid_base_url_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="http"):
        Client("localhost:8000")


# ------------------------------------------------------------------------------ retries


def test_a_503_is_retried_with_the_same_idempotency_key(
    client: Client, scripted: ScriptedTransport, stack: Stack
) -> None:
    # Given the service answers 503 twice before it recovers
    scripted.faults.extend([Answer(503), Answer(503)])

    # When alice submits
    job = client.submit("echo", {"n": 1})

    # Then the client tried three times with one idempotency key, and one job exists
    assert [(s.method, s.path) for s in scripted.sent] == [("POST", "/jobs")] * 3
    keys = {sent.headers["idempotency-key"] for sent in scripted.sent}
    assert len(keys) == 1
    assert stack.job_count() == 1
    assert client.get(job.id).id == job.id


def test_a_lost_answer_to_submit_is_retried_without_a_second_job(
    client: Client, scripted: ScriptedTransport, stack: Stack
) -> None:
    # Given the API stores the job but its answer never arrives
    scripted.faults.append(LoseAnswer())

    # When alice submits
    job = client.submit("echo", {"n": 1})

    # Then the retry replays the same key: the original job comes back, and only one exists
    assert len(scripted.sent) == 2
    assert stack.job_count() == 1
    assert stack.enqueued() == [job.id]


@pytest.mark.parametrize(
    "fault", [Answer(429), Answer(502), Answer(504), Refuse(), LoseAnswer()]
)
def test_every_call_retries_transient_failures(
    client: Client, scripted: ScriptedTransport, fault: Answer | Refuse | LoseAnswer
) -> None:
    job = client.submit("echo", {})
    scripted.sent.clear()
    scripted.faults.append(fault)

    assert client.get(job.id).id == job.id
    assert len(scripted.sent) == 2


def test_retry_after_is_honoured(client: Client, scripted: ScriptedTransport) -> None:
    scripted.faults.append(Answer(429, "slow down", headers={"Retry-After": "0"}))

    assert client.job_types()
    assert len(scripted.sent) == 2


def test_a_503_that_lasts_is_service_unavailable(
    client: Client, scripted: ScriptedTransport
) -> None:
    scripted.faults.extend([Answer(503, "queue down")] * 4)

    with pytest.raises(ServiceUnavailable) as raised:
        client.submit("echo", {})

    assert (raised.value.status, raised.value.detail) == (503, "queue down")
    assert len(scripted.sent) == 4  # the first try and three retries


def test_an_unreachable_service_is_service_unavailable(api: TestClient) -> None:
    transport = ScriptedTransport(AppTransport(api), faults=[Refuse()] * 3)
    with (
        Client(
            BASE_URL, dev_user=OWNER, transport=transport, **FAST | {"retries": 2}
        ) as c,
        pytest.raises(ServiceUnavailable) as raised,
    ):
        c.job_types()

    assert raised.value.status is None
    assert "after 3 tries" in str(raised.value)
    assert not isinstance(raised.value, httpx.HTTPError)
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_a_real_closed_port_is_service_unavailable() -> None:
    # Given a loopback port nobody listens on (bound, then closed)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with (
        Client(f"http://127.0.0.1:{port}", retries=1, backoff=0, timeout=2) as c,
        pytest.raises(ServiceUnavailable),
    ):
        c.job_types()


def test_retries_can_be_turned_off(scripted: ScriptedTransport) -> None:
    scripted.faults.append(Answer(503))
    with (
        Client(BASE_URL, dev_user=OWNER, transport=scripted, retries=0) as once,
        pytest.raises(ServiceUnavailable),
    ):
        once.job_types()

    assert len(scripted.sent) == 1


def test_a_cancel_whose_answer_was_lost_is_not_a_conflict(
    client: Client, scripted: ScriptedTransport
) -> None:
    # Given a cancel the API carried out but whose answer was lost
    job = client.submit("echo", {})
    scripted.faults.append(LoseAnswer())

    # When the client retries, the API says 409 (already cancelled)...
    cancelled = client.cancel(job.id)

    # ...and the client reads the job back: cancelled, as asked
    assert cancelled.status is JobStatus.CANCELLED
    assert [(s.method, s.path) for s in scripted.sent[-3:]] == [
        ("POST", f"/jobs/{job.id}/cancel"),
        ("POST", f"/jobs/{job.id}/cancel"),
        ("GET", f"/jobs/{job.id}"),
    ]


def test_a_retry_whose_answer_was_lost_is_not_a_conflict(
    client: Client, stack: Stack, scripted: ScriptedTransport
) -> None:
    job = client.submit(FAIL_TYPE, {})
    stack.run(job.id)
    scripted.faults.append(LoseAnswer())

    again = client.retry(job.id)

    assert again.status is JobStatus.QUEUED
    assert len(stack.enqueued()) == 2  # one message per submit/retry that happened


def test_a_conflict_without_a_lost_answer_is_still_a_conflict(
    client: Client, scripted: ScriptedTransport
) -> None:
    job = client.submit("echo", {})
    client.cancel(job.id)
    scripted.faults.append(Refuse())  # never reached the API: not ambiguous

    with pytest.raises(Conflict):
        client.cancel(job.id)
