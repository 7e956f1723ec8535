"""The distribution: its version said once, its public names where they always were, and its
modules importing in one direction (errors know no model)."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import httpx
import jobline_client
from jobline_client import Client, JoblineClientError, WaitTimeout
from jobline_client import errors as errors_module

PACKAGE = Path(jobline_client.__file__).parent


def test_the_installed_version_is_the_modules() -> None:
    # pyproject.toml reads the version from jobline_client.client (dynamic), so they are one
    assert importlib.metadata.version("jobline-client") == jobline_client.__version__


def test_the_user_agent_names_the_version() -> None:
    # Given a client whose transport records what it is sent
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    with Client("http://jobline.test", transport=httpx.MockTransport(answer)) as client:
        client.job_types()

    # Then every request says which client made it
    assert (
        seen[0].headers["User-Agent"] == f"jobline-client/{jobline_client.__version__}"
    )


def test_wait_timeout_is_still_public_and_a_client_error() -> None:
    assert "WaitTimeout" in jobline_client.__all__
    assert issubclass(WaitTimeout, JoblineClientError)


def test_errors_import_no_other_module_of_the_client() -> None:
    # The errors <-> models cycle is gone: models and pacing import errors, never the reverse
    tree = ast.parse(Path(errors_module.__file__ or "").read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {name for name in imported if name.startswith("jobline_client")}
