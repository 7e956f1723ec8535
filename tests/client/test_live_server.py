"""The `jobline` command with its real client over a real socket: the API app under uvicorn on a
loopback port, and a background worker running what the API enqueues."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from jobline_client.cli import main

from tests.client.conftest import OWNER, Stack

STARTUP_TIMEOUT_S = 10.0


@pytest.fixture
def live_api(stack: Stack) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 (a free port), as `make run` serves it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(
        uvicorn.Config(stack.app, log_config=None, access_log=False, lifespan="on")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="live-api", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        assert thread.is_alive(), "the API failed to start"
        assert time.monotonic() < deadline, "the API did not start in time"
        time.sleep(0.01)
    host, port = sock.getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()


def test_submit_wait_against_a_live_server(live_api: str, stack: Stack) -> None:
    out, err = io.StringIO(), io.StringIO()

    # When alice submits an echo job and waits, while a worker runs what gets enqueued
    with stack.worker():
        code = main(
            ["submit", "echo", '{"hello":"world"}', "--wait", "--dev-user", OWNER],
            environ={"JOBLINE_API_URL": live_api},
            stdout=out,
            stderr=err,
        )

    # Then the command saw the job succeed and printed it, result included
    assert code == 0, err.getvalue()
    [job_id] = stack.job_ids()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["id", job_id]
    assert ["status", "succeeded"] in [line.split() for line in lines]
    assert ["result", '{"hello":"world"}'] in [line.split() for line in lines]
    assert err.getvalue().startswith(f"submitted echo job {job_id}\n")
    assert err.getvalue().rstrip().endswith("succeeded")
