"""The `jobline` command, in-process against the real API app: every command, the exit codes,
`--output json` against the API's own JSON, options and their environment fallbacks."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobline_client import Client
from jobline_client.cli import Connection, identity_hint, main
from starlette.testclient import TestClient

from tests.client.conftest import BASE_URL, FAIL_TYPE, FAST, OWNER, Stack
from tests.client.transports import Refuse, ScriptedTransport

UNKNOWN_ID = "0" * 32


def row(label: str, value: str) -> str:
    """One line of a job's table: the label, padded to the value column, then the value."""
    return f"{label:<21}{value}"


class Terminal(io.StringIO):
    """A stream that says it is a TTY."""

    def isatty(self) -> bool:
        return True


@dataclass
class Ran:
    """What one run of the command did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """Runs `main(argv)` with the client going through `scripted`; remembers each connection."""

    scripted: ScriptedTransport
    connections: list[Connection] = field(default_factory=list)

    def factory(self, connection: Connection) -> Client:
        self.connections.append(connection)
        return Client(
            BASE_URL,
            connection.token,
            connection.dev_user,
            transport=self.scripted,
            **FAST,
        )

    def __call__(
        self,
        *argv: str,
        environ: dict[str, str] | None = None,
        stdin: str = "",
        stderr: io.StringIO | None = None,
    ) -> Ran:
        out, err = io.StringIO(), stderr if stderr is not None else io.StringIO()
        code = main(
            list(argv),
            client_factory=self.factory,
            environ={"JOBLINE_DEV_USER": OWNER} if environ is None else environ,
            stdin=io.StringIO(stdin),
            stdout=out,
            stderr=err,
        )
        return Ran(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(scripted: ScriptedTransport) -> Cli:
    return Cli(scripted)


def _api(api: TestClient, path: str) -> Any:
    response = api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def _run_on_first_poll(stack: Stack, scripted: ScriptedTransport) -> None:
    """The worker runs each job the first time its state is read (the fake queue runs nothing)."""
    ran: set[str] = set()

    def before(request: httpx.Request) -> None:
        if request.method == "GET" and request.url.path.startswith("/jobs/"):
            job_id = request.url.path.split("/")[2]
            if job_id not in ran:
                ran.add(job_id)
                stack.run(job_id)

    scripted.before = before


# ------------------------------------------------------------------------------- submit


def test_submit_prints_the_job(cli: Cli, stack: Stack) -> None:
    ran = cli("submit", "echo", '{"hello": "world"}')

    assert ran.code == 0, ran.err
    [job_id] = stack.job_ids()
    assert row("id", job_id) in ran.out
    assert row("status", "queued") in ran.out
    assert row("payload", '{"hello":"world"}') in ran.out
    assert ran.err == ""


def test_submit_json_is_the_apis_job_json(cli: Cli, api: TestClient) -> None:
    ran = cli("submit", "echo", '{"hello": "world"}', "--output", "json")

    assert ran.code == 0
    job = ran.json()
    assert job == _api(api, f"/jobs/{job['id']}")
    assert ran.out.count("\n") == 1


def test_submit_passes_the_options(cli: Cli, scripted: ScriptedTransport) -> None:
    ran = cli(
        "submit",
        "echo",
        "--idempotency-key",
        "order-7",
        "--delay",
        "30",
        "--max-attempts",
        "5",
        "--output=json",
    )

    assert ran.code == 0
    sent = scripted.sent[0]
    assert sent.headers["idempotency-key"] == "order-7"
    assert json.loads(sent.body) == {
        "type": "echo",
        "payload": {},
        "max_attempts": 5,
        "delay_seconds": 30,
    }


def test_submit_reads_the_payload_from_a_file_or_stdin(
    cli: Cli, stack: Stack, tmp_path: Path
) -> None:
    payload_file = tmp_path / "payload.json"
    payload_file.write_text('{"from": "file"}')

    from_file = cli("submit", "echo", f"@{payload_file}", "--output", "json")
    from_stdin = cli(
        "submit", "echo", "-", "--output", "json", stdin='{"from": "stdin"}'
    )

    assert from_file.json()["payload"] == {"from": "file"}
    assert from_stdin.json()["payload"] == {"from": "stdin"}


def test_submit_wait_follows_the_job_to_success(
    cli: Cli, stack: Stack, scripted: ScriptedTransport
) -> None:
    _run_on_first_poll(stack, scripted)

    ran = cli("submit", "echo", '{"hello": "world"}', "--wait")

    assert ran.code == 0, ran.err
    [job_id] = stack.job_ids()
    assert ran.err.splitlines() == [
        f"submitted echo job {job_id}",
        "   -  attempt 1/3  succeeded",
    ]
    assert row("status", "succeeded") in ran.out
    assert row("result", '{"hello":"world"}') in ran.out


def test_submit_wait_json_prints_the_final_job(
    cli: Cli, stack: Stack, scripted: ScriptedTransport, api: TestClient
) -> None:
    _run_on_first_poll(stack, scripted)

    ran = cli("submit", "echo", "{}", "--wait", "--output", "json")

    assert ran.code == 0
    job = ran.json()
    assert job["status"] == "succeeded"
    assert job == _api(api, f"/jobs/{job['id']}")


def test_submit_wait_of_a_job_that_fails_exits_1(
    cli: Cli, stack: Stack, scripted: ScriptedTransport
) -> None:
    _run_on_first_poll(stack, scripted)

    ran = cli("submit", FAIL_TYPE, "--wait")

    assert ran.code == 1
    assert row("status", "failed") in ran.out
    assert row("error", "PermanentJobError: it was never going to work") in ran.out


def test_a_tty_gets_a_progress_bar_redrawn_in_place(
    cli: Cli, client: Client, stack: Stack, scripted: ScriptedTransport
) -> None:
    # Given a job that starts, reports half-way, then succeeds, one step per poll
    job = client.submit("sleep", {"seconds": 1})
    steps = [
        lambda: stack.start(job.id),
        lambda: stack.report(job.id, 50.0, "half"),
        lambda: stack.finish(job.id, result={"slept": 1}),
    ]
    scripted.before = lambda request: steps.pop(0)() if steps else None
    terminal = Terminal()

    # When alice watches it from a terminal
    ran = cli("watch", job.id, stderr=terminal)

    # Then one line is redrawn with a bar, the message, the attempts and the status
    assert ran.code == 0
    frames = ran.err.split("\r")[1:]
    assert frames == [
        "[....................]     -  attempt 1/3  running\x1b[K",
        "[##########..........]   50%  half  attempt 1/3  running\x1b[K",
        "[##########..........]   50%  half  attempt 1/3  succeeded\x1b[K\n",
    ]
    assert row("result", '{"slept":1}') in ran.out


# --------------------------------------------------------------------------------- watch


def test_watch_exit_codes(cli: Cli, stack: Stack, api: TestClient) -> None:
    succeeded = cli("submit", "echo", "--output", "json").json()["id"]
    stack.run(succeeded)
    cancelled = cli("submit", "echo", "--output", "json").json()["id"]
    cli("cancel", cancelled)

    assert cli("watch", succeeded).code == 0
    watched = cli("watch", cancelled, "--output", "json")
    assert watched.code == 1
    assert watched.json() == _api(api, f"/jobs/{cancelled}")
    assert watched.err.splitlines() == ["   -  attempt 0/3  cancelled"]


@pytest.mark.parametrize("status", ["failed", "dead_lettered", "rejected"])
def test_watch_exits_1_for_every_unsuccessful_end(
    cli: Cli, stack: Stack, status: str
) -> None:
    job_id = cli("submit", "echo", "--output", "json").json()["id"]
    stack.finish(job_id, status, error=("Boom", "it broke"))

    ran = cli("watch", job_id)

    assert ran.code == 1
    assert row("error", "Boom: it broke") in ran.out


def test_watch_timeout_exits_4_with_the_last_state(cli: Cli) -> None:
    job_id = cli("submit", "echo", "--output", "json").json()["id"]

    ran = cli("watch", job_id, "--timeout", "0.05")

    assert ran.code == 4
    assert row("status", "queued") in ran.out
    assert f"job {job_id} is still queued after 0.05s" in ran.err


# -------------------------------------------------------------- get, list, cancel, retry


def test_get_json_equals_the_api_and_options_go_anywhere(
    cli: Cli, api: TestClient
) -> None:
    job_id = cli("submit", "echo", '{"a": 1}', "--output", "json").json()["id"]

    after = cli("get", job_id, "--output", "json", "--dev-user", OWNER, environ={})
    before = cli("--output", "json", "--dev-user", OWNER, "get", job_id, environ={})

    assert after.code == before.code == 0
    assert after.json() == before.json() == _api(api, f"/jobs/{job_id}")


def test_list_prints_a_table_or_the_apis_items(cli: Cli, api: TestClient) -> None:
    ids = [cli("submit", "echo", "--output", "json").json()["id"] for _ in range(3)]

    table = cli("list")
    as_json = cli("list", "--output", "json")
    limited = cli("list", "--limit", "2", "--status", "queued", "--type", "echo")

    assert table.code == as_json.code == limited.code == 0
    header, *rows = table.out.splitlines()
    assert header.split() == [
        *("ID", "TYPE", "STATUS", "ATTEMPTS", "PROGRESS", "CREATED", "UPDATED")
    ]
    assert [row.split()[0] for row in rows] == ids[::-1]
    assert rows[0].split()[1:5] == ["echo", "queued", "0/3", "-"]
    assert as_json.json() == _api(api, "/jobs")["items"]
    assert len(limited.out.splitlines()) == 3


def test_list_without_jobs(cli: Cli) -> None:
    assert cli("list").out == "no jobs\n"
    assert cli("list", "--output", "json").out == "[]\n"


def test_cancel_and_retry(cli: Cli, api: TestClient) -> None:
    job_id = cli("submit", "echo", "--output", "json").json()["id"]

    cancelled = cli("cancel", job_id, "--output", "json")
    retried = cli("retry", job_id)

    assert (cancelled.code, cancelled.json()["status"]) == (0, "cancelled")
    assert retried.code == 0
    assert row("status", "queued") in retried.out


def test_types_table_and_json(cli: Cli, api: TestClient) -> None:
    table = cli("types")
    as_json = cli("types", "--output", "json")

    assert table.code == 0
    rows = {line.split()[0]: line for line in table.out.splitlines()}
    assert rows["sleep"].split()[1] == "seconds"
    assert rows["echo"].split()[1:3] == ["(any", "object)"]
    assert as_json.json() == _api(api, "/job-types")


# ----------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["teleport"],
        ["get"],
        ["list", "--status", "lost"],
        ["list", "--limit", "0"],
        ["submit", "echo", "{not json"],
        ["submit", "echo", "@/nonexistent/payload.json"],
        ["watch", "x", "--timeout", "-1"],
        ["--output", "yaml", "types"],
    ],
)
def test_usage_errors_exit_2(cli: Cli, argv: list[str]) -> None:
    ran = cli(*argv)

    assert ran.code == 2
    assert "usage: jobline" in ran.err
    assert ran.out == ""


def test_an_api_url_that_is_not_http_exits_2() -> None:
    err = io.StringIO()

    code = main(["--api", "localhost:8000", "types"], environ={}, stderr=err)

    assert code == 2
    assert "the API URL must be http(s)://" in err.getvalue()


def test_help_exits_0(cli: Cli) -> None:
    ran = cli("--help")

    assert ran.code == 0
    assert "submit" in ran.out and "exit codes" in ran.out


def test_an_unknown_job_exits_3_with_the_apis_detail(cli: Cli) -> None:
    ran = cli("get", UNKNOWN_ID)

    assert ran.code == 3
    assert ran.err == f"jobline: the API answered 404: job '{UNKNOWN_ID}' not found\n"


def test_an_invalid_submission_lists_the_fields(cli: Cli) -> None:
    ran = cli("submit", "sleep", '{"seconds": -1}')

    assert ran.code == 3
    lines = ran.err.splitlines()
    assert lines[0] == "jobline: the API refused the request (422):"
    assert lines[1].startswith("  body.payload.seconds: ")


def test_a_conflict_exits_3(cli: Cli, stack: Stack) -> None:
    job_id = cli("submit", "echo", "--output", "json").json()["id"]
    stack.run(job_id)

    ran = cli("cancel", job_id)

    assert ran.code == 3
    assert "409" in ran.err and "succeeded" in ran.err


def test_no_identity_exits_3_saying_how_to_pass_one(cli: Cli) -> None:
    ran = cli("list", environ={})

    assert ran.code == 3
    assert ran.err.splitlines() == [
        "jobline: the API answered 401: authentication required",
        "jobline: no identity was sent: pass --token JWT (or $JOBLINE_TOKEN) for a deployed "
        "API, or --dev-user NAME (or $JOBLINE_DEV_USER) on a local stack (make run)",
    ]


def test_a_refused_token_exits_3_saying_to_pass_another(cli: Cli) -> None:
    # Given a token this API does not accept (no JWT authorizer in front of it here)
    ran = cli("list", "--token", "expired.jwt.value", environ={})

    assert ran.code == 3
    assert ran.err.splitlines()[1] == (
        "jobline: the token was refused (expired, or not from the API's issuer and "
        "audience?): pass another with --token JWT (or $JOBLINE_TOKEN) for a deployed API"
    )


def test_a_dev_user_refused_says_it_counts_only_locally() -> None:
    # A deployed API ignores X-Dev-User: its 401 points at --token
    hint = identity_hint(Connection("https://api.example", None, "ann"))

    assert hint == (
        "X-Dev-User is honoured only by a local stack (JOBLINE_ALLOW_DEV_IDENTITY); pass "
        "--token JWT (or $JOBLINE_TOKEN) for a deployed API"
    )


def test_an_unreachable_api_exits_3(cli: Cli, scripted: ScriptedTransport) -> None:
    scripted.faults.extend([Refuse()] * 4)

    ran = cli("types")

    assert ran.code == 3
    assert ran.err.startswith(f"jobline: cannot reach {BASE_URL} (ConnectError")


# ---------------------------------------------------------------- options and environment


def test_options_fall_back_to_the_environment_then_defaults(cli: Cli) -> None:
    cli("types", environ={})
    cli(
        "types",
        environ={
            "JOBLINE_API_URL": "http://jobs.example.invalid",
            "JOBLINE_TOKEN": "t0k3n",
            "JOBLINE_DEV_USER": "bob",
        },
    )
    cli(
        "--api",
        "http://127.0.0.1:9000",
        "types",
        "--token",
        "other",
        "--dev-user",
        "carol",
        environ={"JOBLINE_TOKEN": "t0k3n", "JOBLINE_DEV_USER": "bob"},
    )

    assert cli.connections == [
        Connection("http://127.0.0.1:8000", None, None),
        Connection("http://jobs.example.invalid", "t0k3n", "bob"),
        Connection("http://127.0.0.1:9000", "other", "carol"),
    ]


def test_the_identity_reaches_the_api(cli: Cli, scripted: ScriptedTransport) -> None:
    cli("types", environ={"JOBLINE_TOKEN": "t0k3n", "JOBLINE_DEV_USER": "bob"})

    headers = scripted.sent[0].headers
    assert (headers["authorization"], headers["x-dev-user"]) == ("Bearer t0k3n", "bob")
