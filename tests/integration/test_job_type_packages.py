"""The walk-through of docs/job-types.md, end to end through the functions the template names, on
moto: a team's package of job types in a folder of its own (no file under shared/ changes) is
discovered, listed by `GET /job-types`, validated at submit, and run by the worker, plain or
`async def`; and the API function never imports its handler module, nor what that imports."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobline import bootstrap
from jobline.models import JobMessage
from jobline_local.template import function_handler, load_template

from tests.conftest import FakeLambdaContext, MotoStack, sqs_event
from tests.support.events import http_api_event
from tests.support.packages import write_entry_point, write_type_package

TEMPLATE = load_template()
OWNER = "team-member"


def function(name: str) -> Any:
    """The handler the template names for function `name`, imported as Lambda would."""
    module, _, attribute = function_handler(TEMPLATE, name).rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    event = http_api_event(
        method, path, body=None if body is None else json.dumps(body), sub=OWNER
    )
    response = function("ApiFunction")(event, FakeLambdaContext(timeout_s=15))
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_team_package_is_listed_submitted_and_run_without_the_api_importing_its_handler(
    moto_stack: MotoStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    asynchronous: bool,
) -> None:
    # Given a team's package (declaration + handler importing a "heavy" library), installed
    # with its entry point, as the walk-through adds one
    package = write_type_package(tmp_path, asynchronous=asynchronous)
    write_entry_point(tmp_path, "team-types", {"words": package.name})
    monkeypatch.syspath_prepend(str(tmp_path))
    bootstrap.reset()

    # When the API function lists the job types and takes a job of the new one
    status, types = api("GET", "/job-types")
    assert status == 200
    listed = {job_type["name"]: job_type for job_type in types}
    submitted, job = api(
        "POST",
        "/jobs",
        {"type": package.type_name, "payload": {"text": "one two three"}},
    )
    refused, error = api(
        "POST", "/jobs", {"type": package.type_name, "payload": {"text": 3}}
    )

    # Then the type is listed with its schema, validated, and the job queued ...
    assert listed[package.type_name]["input_schema"]["required"] == ["text"]
    assert (submitted, job["status"]) == (202, "queued")
    assert refused == 422
    assert [e["loc"] for e in error["detail"]] == [["body", "payload", "text"]]
    # ... and the API never imported the handler module, nor its library
    assert package.handler_module not in sys.modules
    assert package.heavy not in sys.modules

    # When the worker function runs the message the outbox sent
    [message] = moto_stack.receive()
    assert JobMessage.model_validate_json(message["Body"]).job_id == job["id"]
    event = sqs_event([message], moto_stack.provisioned.queue_arns["JobsQueue"])
    answer = function("WorkerFunction")(event, FakeLambdaContext())

    # Then the job succeeded with the handler's result
    assert answer == {"batchItemFailures": []}
    status, done = api("GET", f"/jobs/{job['id']}")
    assert (status, done["status"], done["result"]) == (200, "succeeded", {"words": 3})
    assert package.handler_module in sys.modules


def test_a_module_named_by_the_setting_works_the_same(
    moto_stack: MotoStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a package named by JOBLINE_JOB_TYPE_MODULES instead of an entry point
    package = write_type_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("JOBLINE_JOB_TYPE_MODULES", package.name)
    bootstrap.reset()

    # Then the API lists it (without importing its handler)
    status, types = api("GET", "/job-types")
    assert status == 200
    assert package.type_name in {job_type["name"] for job_type in types}
    assert package.handler_module not in sys.modules


README = Path(__file__).resolve().parents[2] / "README.md"
WALK_THROUGH_FILE = re.compile(
    r"```python\n# (job_types/wordcount/[\w/]+\.py)\n(.*?)```", re.S
)


@pytest.fixture
def forget_wordcount() -> Iterator[None]:
    """The walk-through's package is `wordcount`, exactly as the README names it: imported by
    this test only, and forgotten after it."""
    yield
    for name in [name for name in sys.modules if name.split(".")[0] == "wordcount"]:
        del sys.modules[name]


def test_the_readme_walk_through_runs_as_written(
    moto_stack: MotoStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    forget_wordcount: None,
) -> None:
    # Given the README's walk-through files, written as it says, and the entry point it adds
    readme = README.read_text(encoding="utf-8")
    files = WALK_THROUGH_FILE.findall(readme)
    assert [path for path, _ in files] == [
        "job_types/wordcount/__init__.py",
        "job_types/wordcount/handler.py",
    ]
    for path, code in files:
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code)
    assert 'wordcount = "wordcount"' in readme
    write_entry_point(
        tmp_path / "job_types", "walk-through", {"wordcount": "wordcount"}
    )
    monkeypatch.syspath_prepend(str(tmp_path / "job_types"))
    bootstrap.reset()

    # When the API lists the types and takes a wordcount job, and the worker runs it
    status, types = api("GET", "/job-types")
    assert "wordcount" in {job_type["name"] for job_type in types}
    submitted, job = api(
        "POST", "/jobs", {"type": "wordcount", "payload": {"text": "a b c d"}}
    )
    assert submitted == 202
    assert "wordcount.handler" not in sys.modules
    [message] = moto_stack.receive()
    event = sqs_event([message], moto_stack.provisioned.queue_arns["JobsQueue"])
    assert function("WorkerFunction")(event, FakeLambdaContext()) == {
        "batchItemFailures": []
    }

    # Then the job succeeded with the handler's result
    status, done = api("GET", f"/jobs/{job['id']}")
    assert (status, done["status"], done["result"]) == (200, "succeeded", {"words": 4})
