"""The dashboard in a real browser, against the whole local stack: jobs submitted from the page
really run (the SQS pollers invoke the worker), and every call the page makes is an API call."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jobline_local.stack import LocalStack
from playwright.sync_api import Page, expect

from tests.browser.conftest import SCREENSHOTS, STAGE

pytestmark = pytest.mark.browser

FINAL = {"succeeded", "failed", "cancelled", "dead_lettered", "rejected"}


def new_user() -> str:
    """A caller of its own: the test sees only the jobs it made."""
    return f"ui-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def user() -> str:
    return new_user()


@pytest.fixture
def api(local_stack: LocalStack, user: str) -> Iterator[httpx.Client]:
    """The same caller, straight to the API (to set up jobs, and to check what the page shows)."""
    with httpx.Client(
        base_url=local_stack.api_url, headers={"X-Dev-User": user}, timeout=10
    ) as client:
        yield client


def submit(api: httpx.Client, job_type: str, payload: Any, **options: Any) -> str:
    response = api.post("/jobs", json={"type": job_type, "payload": payload, **options})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_until_final(
    api: httpx.Client, job_ids: list[str], timeout_s: float = 20
) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(job_ids)
    while pending and time.monotonic() < deadline:
        pending = {
            i for i in pending if api.get(f"/jobs/{i}").json()["status"] not in FINAL
        }
        time.sleep(0.1)
    assert not pending, f"jobs still not finished: {sorted(pending)}"


def open_dashboard(page: Page, base_url: str, user: str) -> None:
    """Open the page as a person would: load it, then type the dev user into its field."""
    page.goto(f"{base_url}/ui")
    page.fill("#dev-user", user)


def listed_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("#job-rows tr").evaluate_all(
        "rows => rows.map(row => row.dataset.jobId)"
    )
    return ids


def test_the_page_loads_without_identity_and_remembers_the_dev_user(
    page: Page, local_stack: LocalStack, api: httpx.Client, user: str
) -> None:
    # Given a caller with one finished job
    job_id = submit(api, "echo", {"n": 1})
    wait_until_final(api, [job_id])

    # When the page is loaded (no identity needed for that)
    response = page.goto(f"{local_stack.api_url}/ui")

    # Then /ui is the page, served with a strict Content-Security-Policy
    assert response is not None
    assert page.url == f"{local_stack.api_url}/ui"
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy
    expect(page).to_have_title("Jobline")

    # When the caller types their dev user
    page.fill("#dev-user", user)

    # Then their job is listed, and the counts show it
    expect(page.locator("#job-rows tr")).to_have_count(1)
    assert listed_ids(page) == [job_id]
    expect(page.locator('#counts [data-status="succeeded"]')).to_have_attribute(
        "data-count", "1"
    )
    expect(page.locator('#counts [data-status="queued"]')).to_have_attribute(
        "data-count", "0"
    )

    # And after a reload the dev user is remembered (localStorage)
    page.reload()
    expect(page.locator("#dev-user")).to_have_value(user)
    expect(page.locator("#job-rows tr")).to_have_count(1)
    page.screenshot(path=SCREENSHOTS / "loaded.png")


def test_an_echo_job_submitted_from_the_generated_form_succeeds(
    page: Page, local_stack: LocalStack, user: str
) -> None:
    # Given the dashboard and the submit form for echo (its schema: any JSON object)
    open_dashboard(page, local_stack.api_url, user)
    page.click("#nav-submit")
    page.select_option("#submit-type", "echo")
    payload = {"hello": "world", "html": "<img src=x onerror=window.pwned=1>"}

    # When the caller fills the payload and submits
    page.fill('[name="payload"]', json.dumps(payload))
    page.click("#submit-button")

    # Then the job page shows the API's answer and the job reaching succeeded
    expect(page.locator("#action-answer")).to_contain_text("submit: HTTP 202")
    expect(page.locator("#job-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#job-result")).to_contain_text('"hello": "world"')
    expect(page.locator("#job-history li.attempt.ok")).to_have_count(1)

    # And the attacker-controlled payload is shown as text, never run as markup
    expect(page.locator("#job-payload")).to_contain_text("<img src=x onerror")
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None
    page.screenshot(path=SCREENSHOTS / "echo-succeeded.png", full_page=True)

    # When the caller presses retry on the succeeded job
    page.click("#retry-job")

    # Then the API's refusal is shown: status code and detail
    answer = page.locator("#action-answer")
    expect(answer).to_contain_text("retry: HTTP 409 Conflict: ")
    expect(answer).to_have_attribute("data-status", "409")


def test_a_running_sleep_job_is_cancelled_from_its_page(
    page: Page, local_stack: LocalStack, user: str
) -> None:
    # Given a sleep job of 30 s submitted from the form (a number field from its schema)
    open_dashboard(page, local_stack.api_url, user)
    page.click("#nav-submit")
    page.select_option("#submit-type", "sleep")
    page.fill('[name="payload.seconds"]', "30")
    page.fill("#max-attempts", "1")
    page.click("#submit-button")

    # When it is running and reporting progress
    status = page.locator("#job-status")
    expect(status).to_have_attribute("data-status", "running")
    expect(page.locator("#job-progress-text")).to_contain_text("slept")
    page.screenshot(path=SCREENSHOTS / "sleep-running.png", full_page=True)

    # And the caller presses cancel
    page.click("#cancel-job")

    # Then the API's answer is shown (202: the handler stops at its next checkpoint)
    expect(page.locator("#action-answer")).to_contain_text("cancel: HTTP 202 Accepted")

    # And the job ends cancelled within a few seconds, its attempt ended by JobCancelled
    expect(status).to_have_attribute("data-status", "cancelled", timeout=10_000)
    expect(page.locator("#job-history li.attempt.error")).to_contain_text(
        "JobCancelled"
    )
    page.screenshot(path=SCREENSHOTS / "sleep-cancelled.png", full_page=True)


def test_the_list_filters_by_status_and_type_and_auto_refresh_pauses(
    page: Page, local_stack: LocalStack, api: httpx.Client, user: str
) -> None:
    # Given three finished echo jobs and two sleep jobs still queued (delayed)
    echoes = [submit(api, "echo", {"n": n}) for n in range(3)]
    sleeps = [submit(api, "sleep", {"seconds": 1}, delay_seconds=900) for _ in range(2)]
    wait_until_final(api, echoes)
    open_dashboard(page, local_stack.api_url, user)
    expect(page.locator("#job-rows tr")).to_have_count(5)
    expect(page.locator('#counts [data-status="queued"]')).to_have_attribute(
        "data-count", "2"
    )
    expect(page.locator('#counts [data-status="succeeded"]')).to_have_attribute(
        "data-count", "3"
    )

    # When the caller filters on queued
    page.select_option("#filter-status", "queued")

    # Then only the queued jobs are listed
    expect(page.locator("#job-rows tr")).to_have_count(2)
    assert sorted(listed_ids(page)) == sorted(sleeps)

    # When they click the succeeded count instead
    page.click('#counts [data-status="succeeded"]')

    # Then the filter follows, and only the succeeded jobs are listed
    expect(page.locator("#filter-status")).to_have_value("succeeded")
    expect(page.locator("#job-rows tr")).to_have_count(3)
    assert sorted(listed_ids(page)) == sorted(echoes)

    # When they filter on the sleep type with any status
    page.select_option("#filter-status", "")
    page.select_option("#filter-type", "sleep")

    # Then only the sleep jobs are listed
    expect(page.locator("#job-rows tr")).to_have_count(2)
    assert sorted(listed_ids(page)) == sorted(sleeps)

    # When auto-refresh is paused, the page makes no more calls
    page.uncheck("#auto-refresh")
    calls: list[str] = []
    page.on("request", lambda request: calls.append(request.url))
    page.wait_for_timeout(3000)
    assert calls == []

    # And when it is on again, it refreshes
    page.check("#auto-refresh")
    with page.expect_request(lambda request: "/jobs?" in request.url, timeout=5000):
        pass


def test_counts_are_taken_again_when_asked(
    page: Page, local_stack: LocalStack, api: httpx.Client, user: str
) -> None:
    # Given the page open on one queued job (delayed), its counts taken
    submit(api, "sleep", {"seconds": 1}, delay_seconds=900)
    open_dashboard(page, local_stack.api_url, user)
    queued = page.locator('#counts [data-status="queued"]')
    expect(queued).to_have_attribute("data-count", "1")
    expect(page.locator("#counted")).to_contain_text("counted")

    # When a second job is queued elsewhere and the caller asks to count again
    submit(api, "sleep", {"seconds": 1}, delay_seconds=900)
    counted: list[str] = []
    page.on(
        "request",
        lambda request: (
            counted.append(request.url) if "limit=100" in request.url else None
        ),
    )
    with page.expect_request(lambda request: "status=rejected" in request.url):
        page.click("#recount")

    # Then the counts show it, from one listing per status, of summaries
    expect(queued).to_have_attribute("data-count", "2")
    assert len(counted) == 7
    listed = api.get("/jobs", params={"status": "queued", "limit": 100}).json()
    assert all("payload" not in item for item in listed["items"])


def test_the_list_pages_through_more_than_one_page(
    page: Page, local_stack: LocalStack, api: httpx.Client, user: str
) -> None:
    # Given 25 finished jobs
    submitted = [submit(api, "echo", {"n": n}) for n in range(25)]
    wait_until_final(api, submitted, timeout_s=40)

    # When the caller lists them ten at a time
    open_dashboard(page, local_stack.api_url, user)
    page.select_option("#page-size", "10")
    rows = page.locator("#job-rows tr")
    expect(rows).to_have_count(10)
    expect(page.locator('#counts [data-status="succeeded"]')).to_have_attribute(
        "data-count", "25"
    )
    page.screenshot(path=SCREENSHOTS / "dashboard.png")
    first = listed_ids(page)

    # Then the next pages hold the next ten and the last five, newest first
    page.click("#next-page")
    expect(page.locator("#page-number")).to_have_text("page 2")
    expect(rows).to_have_count(10)
    second = listed_ids(page)
    page.click("#next-page")
    expect(page.locator("#page-number")).to_have_text("page 3")
    expect(rows).to_have_count(5)
    third = listed_ids(page)
    expect(page.locator("#next-page")).to_be_disabled()
    assert first + second + third == list(reversed(submitted))

    # And previous goes back to the page before
    page.click("#prev-page")
    expect(page.locator("#page-number")).to_have_text("page 2")
    expect(rows).to_have_count(10)
    assert listed_ids(page) == second


def test_the_page_works_behind_a_named_stage(
    page: Page, staged_api_url: str, api: httpx.Client, user: str
) -> None:
    # Given the API behind the stage "prod" and a caller's finished job
    job_id = submit(api, "echo", {"staged": True})
    wait_until_final(api, [job_id])
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    # When the caller opens /prod/ui and then the job
    open_dashboard(page, staged_api_url, user)
    assert page.url == f"{staged_api_url}/ui"
    expect(page.locator("#job-rows tr")).to_have_count(1)
    page.click(f'#job-rows a[href="#/jobs/{job_id}"]')

    # Then the job page shows it, and every call the page made stayed under /prod/
    expect(page.locator("#job-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#job-payload")).to_contain_text('"staged": true')
    origin = staged_api_url.removesuffix(f"/{STAGE}")
    assert requested
    assert all(url.startswith(f"{origin}/{STAGE}/") for url in requested), requested


def test_a_job_whose_data_is_in_the_bucket_links_to_it(
    page: Page, local_stack: LocalStack, api: httpx.Client, user: str
) -> None:
    # Given an echo job whose payload, and so its result, are over the 64 KiB a job holds
    payload = {"data": "x" * 70_000}
    job_id = submit(api, "echo", payload)
    wait_until_final(api, [job_id])

    # When the caller opens it
    open_dashboard(page, local_stack.api_url, user)
    page.goto(f"{local_stack.api_url}/ui#/jobs/{job_id}")

    # Then the payload and the result are links to the bucket, with their size, each of
    # which brings back the data
    for name in ("payload", "result"):
        link = page.locator(f"#job-{name} a")
        expect(link).to_contain_text("bytes of JSON")
        href = link.get_attribute("href")
        assert href is not None and href.startswith(local_stack.aws_endpoint)
        assert httpx.get(href, timeout=10).json() == payload
