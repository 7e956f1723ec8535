"""Browser tests: Playwright driving Debian's chromium against the whole local stack (moto server,
the API under uvicorn, the SQS pollers), so the jobs the page submits really run.

Without chromium (or Playwright) they are skipped, loudly; with `JOBLINE_BROWSER_TESTS=required`
(CI sets it in `.ci/run`) they fail instead."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack

CHROMIUM = Path(os.environ.get("JOBLINE_BROWSER_CHROMIUM", "/usr/bin/chromium"))
"""Debian's chromium (`apt-get install -y chromium`); Playwright cannot download its own here."""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
"""Where the tests save what they saw (git-ignored)."""
REQUIRED = os.environ.get("JOBLINE_BROWSER_TESTS", "").strip().lower() == "required"
STAGE = "prod"
EXPECTED_ANSWER = re.compile(
    r"^Failed to load resource: the server responded with a status of 4\d\d"
)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"chromium not found at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (the dev extra has it)"
    return None


def _skip_message(reason: str) -> str:
    return (
        f"BROWSER TESTS SKIPPED: {reason}. Install it with `apt-get install -y chromium`; "
        "JOBLINE_BROWSER_TESTS=required makes this a failure (CI sets it)."
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    reason = missing_browser()
    if reason is None or REQUIRED:  # when required, the `browser` fixture fails them
        return
    skip = pytest.mark.skip(reason=_skip_message(reason))
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    reason = missing_browser()
    if reason is not None and not REQUIRED:
        terminalreporter.write_sep("!", _skip_message(reason), red=True, bold=True)


@pytest.fixture(autouse=True)
def aws_env() -> Iterator[None]:
    """Replaces the suites' per-test environment: this module's stack sets the functions'
    environment itself, and its poller threads must keep seeing it between tests."""
    yield


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    """The whole local stack on free loopback ports, for the module's tests; each test is a
    different caller (its own X-Dev-User), so they see only their own jobs."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "JOBLINE_LOG_LEVEL"):
            env.delenv(name, raising=False)
        settings = LocalSettings(
            host="127.0.0.1",
            api_port=0,
            moto_port=0,
            prefix=f"jobline-ui-{uuid.uuid4().hex[:8]}",
            poll_wait_seconds=1,
            shutdown_timeout_seconds=5,
        )
        with LocalStack(settings, set_env=env.setenv) as stack:
            yield stack


class StagePrefix:
    """What API Gateway and `jobline_api.stage.strip_stage` do for a named stage: the request
    arrives as `/{stage}/...`, the app routes on the path without it."""

    def __init__(self, app: Any, stage: str) -> None:
        self.app = app
        self.prefix = f"/{stage}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http":
            if not (path == self.prefix or path.startswith(self.prefix + "/")):
                await send(
                    {"type": "http.response.start", "status": 404, "headers": []}
                )
                await send({"type": "http.response.body", "body": b"no such stage"})
                return
            scope = {**scope, "path": path[len(self.prefix) :] or "/"}
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def staged_api_url(local_stack: LocalStack) -> Iterator[str]:
    """The same API (same service, same stack) behind a named stage: `http://.../prod`."""
    from jobline_api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            StagePrefix(create_app(allow_dev_identity=True), STAGE),
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name="api-staged", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, (
            "staged API did not start"
        )
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/{STAGE}"
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium, one per module."""
    reason = missing_browser()
    if reason is not None:
        pytest.fail(f"JOBLINE_BROWSER_TESTS=required but {reason}", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page; any script error or CSP violation fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    # Actions and assertions alike wait up to 15 s: on a loaded machine each of the page's
    # refreshes (a list and eight counts against moto) can take seconds, and a newer refresh
    # supersedes an older one's answer. Playwright's `expect` waits 5 s unless told.
    context.set_default_timeout(15_000)
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    opened = context.new_page()
    problems: list[str] = []
    opened.on(
        "console",
        lambda message: (
            problems.append(message.text) if message.type == "error" else None
        ),
    )
    opened.on("pageerror", lambda error: problems.append(str(error)))
    try:
        yield opened
        # The browser reports every 4xx answer the page gets (a 401 before a user is set, a
        # 409 the page shows): those are API answers, not errors of the page.
        unexpected = [p for p in problems if not EXPECTED_ANSWER.match(p)]
        assert unexpected == [], f"errors in the page: {unexpected}"
    finally:
        context.close()


@pytest.fixture(scope="session", autouse=True)
def screenshots_folder() -> Path:
    """A clean screenshots folder per run."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS
