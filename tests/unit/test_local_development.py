"""docs/local-development.md: its commands name real make targets, files and functions; every
local setting is documented; `events/env.json` sets what the functions need in a way the SAM CLI
applies; `make sam-events` writes events that name the job it submitted."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jobline.aws.parameters import load_cursor_keys
from jobline.config import Settings
from jobline_local.sam_events import (
    API_EVENTS,
    MESSAGE_EVENTS,
    OUT_DIR,
    events_for_job,
    sample_caller,
)
from jobline_local.settings import LocalSettings
from jobline_local.template import REPO_ROOT, load_template, resources_of_type

from tests.support.events import load_event
from tests.support.fakes import START

DOC = (REPO_ROOT / "docs" / "local-development.md").read_text()
MAKEFILE = (REPO_ROOT / "Makefile").read_text()
TEMPLATE = load_template()
FUNCTIONS = resources_of_type(TEMPLATE, "AWS::Serverless::Function")
ENV_FILE = "events/env.json"


def shell_lines() -> list[str]:
    """Every command line of the page's ```sh blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC, flags=re.DOTALL)
    return [
        line.strip() for block in blocks for line in block.splitlines() if line.strip()
    ]


def sam_invocations() -> list[list[str]]:
    return [
        shlex.split(line)
        for line in shell_lines()
        if line.startswith(".venv-sam/bin/sam local invoke ")
    ]


def option(words: list[str], name: str) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words) if word == name]


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+)(?: [A-Za-z0-9_. -]+)?:", MAKEFILE, re.M))


def test_the_make_commands_are_real_targets() -> None:
    commands = [line for line in shell_lines() if "make " in line]
    assert commands, "the page shows no make command"
    for line in commands:
        target = line.split("make ", 1)[1].split()[0]
        assert target in make_targets(), line
    # And the SAM CLI it names is the one the Makefile installs for `make build`
    assert ".venv-sam/bin/sam build" in MAKEFILE
    assert re.search(r"^build: \.venv-sam/\.installed", MAKEFILE, re.M)


def test_every_sam_invocation_is_exact() -> None:
    """`sam local invoke --add-host` passes hostname:IP mappings to the container; Docker maps
    `host-gateway` to the host (docs.aws.amazon.com/serverless-application-model/latest/
    developerguide/sam-cli-command-reference-sam-local-invoke.html)."""
    invocations = sam_invocations()
    invoked = {words[3] for words in invocations}
    assert {"ApiFunction", "WorkerFunction", "IngestFunction"} <= invoked
    written = {
        f"{OUT_DIR.relative_to(REPO_ROOT)}/{name}.json"
        for name in API_EVENTS + MESSAGE_EVENTS
    }
    for words in invocations:
        # A function of the template, with an event that exists or that `make sam-events` writes
        assert words[3] in FUNCTIONS
        [event] = option(words, "--event")
        assert (REPO_ROOT / event).is_file() or event in written, event
        # And the env file, the host mapping containers need on Linux, make run's region
        assert option(words, "--env-vars") == [ENV_FILE]
        assert option(words, "--add-host") == ["host.docker.internal:host-gateway"]
        assert option(words, "--region") == [
            LocalSettings.model_fields["aws_region"].default
        ]
    # And every event `make sam-events` writes is invoked
    assert written <= {option(words, "--event")[0] for words in invocations}


def test_the_linux_steps_let_containers_reach_moto() -> None:
    assert "JOBLINE_LOCAL_MOTO_HOST=0.0.0.0 make run" in shell_lines()
    assert "moto_host" in LocalSettings.model_fields
    assert LocalSettings.model_fields["moto_host"].default is None  # off by default


def test_every_local_setting_is_documented() -> None:
    documented = set(re.findall(r"`(JOBLINE_LOCAL_[A-Z_]+)", DOC))
    declared = {
        f"JOBLINE_LOCAL_{name.upper()}"
        for name, field in LocalSettings.model_fields.items()
        if field.validation_alias is None
    }
    assert documented == declared
    for alias in ("JOBLINE_LOG_LEVEL", "AWS_REGION"):
        assert f"| `{alias}` |" in DOC


def template_variables(function: str) -> dict[str, Any]:
    """The variables the template declares for a function (Globals, then its own)."""
    variables = dict(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    own = FUNCTIONS[function]["Properties"].get("Environment", {})
    variables.update(own.get("Variables", {}))
    return variables


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_the_env_file_sets_only_variables_the_template_declares(function: str) -> None:
    """The SAM CLI sets a variable of `--env-vars` only when the function declares it in the
    template ("override the values defined in the template": docs.aws.amazon.com/
    serverless-application-model/latest/developerguide/serverless-sam-cli-using-invoke.html;
    samcli.local.lambdafn.env_vars.EnvironmentVariables.resolve): any other is dropped."""
    env = load_event("env")
    assert set(env[function]) <= set(template_variables(function)), function


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_the_env_file_gives_each_function_the_settings_it_requires(
    function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given only what the SAM CLI would set: the file's variables, on Lambda
    for name in Settings.model_fields:
        monkeypatch.delenv(f"JOBLINE_{name.upper()}", raising=False)
    for name, value in load_event("env")[function].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function)

    # Then the settings validate (the table and queue are required) and point at moto
    settings = Settings()  # type: ignore[call-arg]
    endpoint = urlsplit(settings.aws_endpoint_url or "")
    assert (endpoint.hostname, endpoint.port) == (
        "host.docker.internal",
        LocalSettings.model_fields["moto_port"].default,
    )
    # And the API's cursor key is one Lambda accepts (a weak one stops it at init)
    if function == "ApiFunction":
        assert load_cursor_keys(settings, no_ssm, lambda: START).current


def no_ssm() -> Any:
    raise AssertionError("the local key is in the file: nothing is read from SSM")


def test_sam_events_name_the_submitted_job() -> None:
    # Given a job submitted as the sample events' caller
    owner = sample_caller()
    assert (
        owner
        == load_event("api_submit_job")["requestContext"]["authorizer"]["jwt"][
            "claims"
        ]["sub"]
    )
    job_id = "a" * 32

    # When the events are written for it
    events = events_for_job(job_id, owner, "sleep")

    # Then the API events name it in their path
    assert set(events) == set(API_EVENTS + MESSAGE_EVENTS)
    for name in API_EVENTS:
        event = events[name]
        assert event["rawPath"].startswith(f"/jobs/{job_id}")
        assert event["requestContext"]["http"]["path"] == event["rawPath"]
        assert event["pathParameters"]["proxy"] == event["rawPath"].lstrip("/")
        assert load_event(name)["rawPath"] != event["rawPath"]
    # And the SQS events carry its message, the MD5 matching
    for name in MESSAGE_EVENTS:
        [record] = events[name]["Records"]
        assert json.loads(record["body"]) == {
            "job_id": job_id,
            "owner": owner,
            "job_type": "sleep",
        }
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()


def test_the_page_is_where_the_makefile_and_code_point() -> None:
    assert Path(REPO_ROOT / "docs" / "local-development.md").is_file()
    assert "docs/local-development.md" in MAKEFILE
