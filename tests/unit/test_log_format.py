"""Log lines for people and for machines: JSON unless a person is at a terminal (or it is forced),
always JSON in Lambda; and the banner `make run` prints for a person."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from typing import Any

import pytest
from jobline.config import LogSettings
from jobline.logging import choose_format
from jobline_local.banner import render_banner
from pydantic import ValidationError

SNIPPET = """
from jobline.logging import configure, current_format, get_logger
configure()
get_logger("demo").info("hello", answer=42)
print("format", current_format(), flush=True)
"""
"""One process configuring logging as a function does at import, then logging one line."""


def run_python(code: str, environment: dict[str, str], *, terminal: bool) -> list[str]:
    """Run `code` in a fresh interpreter with only the given Jobline/Lambda variables, stdout a
    pipe or (`terminal`) a pseudo-terminal; its stdout lines."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("JOBLINE_", "AWS_LAMBDA_"))
    }
    env.update(environment)
    command = [sys.executable, "-c", code]
    if not terminal:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout.splitlines()
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command, env=env, stdout=follower, stderr=subprocess.PIPE
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert process.wait(60) == 0, process.stderr.read() if process.stderr else ""
    return b"".join(chunks).decode().replace("\r\n", "\n").splitlines()


def log_line(lines: list[str]) -> str:
    (line,) = [line for line in lines if "hello" in line]
    return line


def chosen(lines: list[str]) -> str:
    (line,) = [line for line in lines if line.startswith("format ")]
    return line.removeprefix("format ")


def as_json(line: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(line)
    return parsed


@pytest.mark.parametrize(
    ("setting", "is_terminal", "in_lambda", "expected"),
    [
        ("auto", False, False, "json"),
        ("auto", True, False, "console"),
        ("json", True, False, "json"),
        ("console", False, False, "console"),
        ("auto", True, True, "json"),
        ("console", True, True, "json"),
        ("console", False, True, "json"),
    ],
)
def test_the_format_follows_the_setting_the_terminal_and_lambda(
    setting: str, is_terminal: bool, in_lambda: bool, expected: str
) -> None:
    assert (
        choose_format(setting, is_terminal=is_terminal, in_lambda=in_lambda) == expected
    )


def test_log_settings_need_none_of_the_other_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given none of the required settings
    monkeypatch.delenv("JOBLINE_TABLE_NAME")
    monkeypatch.delenv("JOBLINE_QUEUE_URL")
    monkeypatch.delenv("JOBLINE_LOG_FORMAT", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)

    # Then the log settings read anyway: auto, outside Lambda
    assert LogSettings().log_format == "auto"
    assert not LogSettings().in_lambda

    # And they take the format in any case, and Lambda's function name
    monkeypatch.setenv("JOBLINE_LOG_FORMAT", " Console ")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "jobline-api")
    assert LogSettings().log_format == "console"
    assert LogSettings().in_lambda


def test_an_unknown_log_format_fails_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBLINE_LOG_FORMAT", "pretty")
    with pytest.raises(ValidationError, match="log_format"):
        LogSettings()


def test_logs_are_json_by_default_when_stdout_is_not_a_terminal() -> None:
    # Given no setting and stdout a pipe, and none of the other settings
    lines = run_python(SNIPPET, {}, terminal=False)

    # Then the line is one JSON object
    line = as_json(log_line(lines))
    assert (line["event"], line["answer"], line["level"]) == ("hello", 42, "info")
    assert line["timestamp"].endswith("Z")
    assert chosen(lines) == "json"


def test_logs_are_console_lines_on_a_terminal() -> None:
    # Given no setting and stdout a terminal (a person running `make run`)
    lines = run_python(SNIPPET, {}, terminal=True)

    # Then the line is human-readable and coloured, not JSON
    line = log_line(lines)
    assert "\x1b[" in line
    assert "hello" in line and "answer" in line and "42" in line
    assert not line.startswith("{")
    assert chosen(lines) == "console"


def test_console_can_be_forced_off_a_terminal() -> None:
    # Given JOBLINE_LOG_FORMAT=console and stdout a pipe
    lines = run_python(SNIPPET, {"JOBLINE_LOG_FORMAT": "console"}, terminal=False)

    # Then the line is a console line, without colour codes in the pipe
    line = log_line(lines)
    assert "hello" in line and "answer=42" in line and "[info" in line
    assert "\x1b[" not in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_json_can_be_forced_on_a_terminal() -> None:
    lines = run_python(SNIPPET, {"JOBLINE_LOG_FORMAT": "json"}, terminal=True)
    assert as_json(log_line(lines))["event"] == "hello"


def test_lambda_stays_json_whatever_the_setting_and_the_terminal() -> None:
    # Given a Lambda environment, stdout a terminal and console asked for
    environment = {
        "AWS_LAMBDA_FUNCTION_NAME": "jobline-api",
        "JOBLINE_LOG_FORMAT": "console",
    }

    # When logging is configured the way every function does at import
    lines = run_python(SNIPPET, environment, terminal=True)

    # Then lines are JSON
    assert as_json(log_line(lines))["answer"] == 42
    assert chosen(lines) == "json"


def test_a_lambda_handler_module_configures_json_at_import() -> None:
    # Given the worker's handler module imported as Lambda imports it (on a terminal, even)
    code = (
        "import jobline_worker.handler\n"
        "from jobline.logging import current_format\n"
        "print('format', current_format(), flush=True)\n"
    )
    environment = {
        "AWS_LAMBDA_FUNCTION_NAME": "jobline-worker",
        "JOBLINE_TABLE_NAME": "jobline-jobs",
        "JOBLINE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/jobs",
    }

    # Then its logging is JSON
    assert chosen(run_python(code, environment, terminal=True)) == "json"


def test_the_banner_says_where_everything_is_and_what_to_try() -> None:
    # Given the stack's addresses
    queues = {
        "JobsQueue": "http://127.0.0.1:5055/123456789012/jobline-local-JobsQueue",
        "IngestQueue": "http://127.0.0.1:5055/123456789012/jobline-local-IngestQueue",
    }

    # When the banner is rendered
    banner = render_banner(
        "http://127.0.0.1:8000",
        "http://127.0.0.1:5055",
        queues,
        "jobline-local-JobsTable",
    )

    # Then it names the API, its docs, the dashboard, the AWS endpoint, the queues, the table
    for text in (
        "http://127.0.0.1:8000\n",
        "http://127.0.0.1:8000/docs",
        "http://127.0.0.1:8000/ui/",
        "http://127.0.0.1:5055",
        "jobline-local-JobsQueue",
        "jobline-local-IngestQueue",
        "jobline-local-JobsTable",
        "Ctrl-C",
    ):
        assert text in banner
    # And the command to try, with the default API (no --api)
    assert (
        """.venv/bin/jobline submit echo '{"hello": "world"}' --wait --dev-user alice\n"""
        in banner
    )
    # And without colour unless asked for
    assert "\x1b[" not in banner
    assert "\x1b[" in render_banner("http://x", "http://y", queues, color=True)


def test_the_banner_command_names_an_api_on_another_port() -> None:
    banner = render_banner("http://127.0.0.1:9000", "http://127.0.0.1:5055", {})
    assert "--dev-user alice --api http://127.0.0.1:9000\n" in banner
