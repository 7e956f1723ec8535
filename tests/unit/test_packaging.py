"""Packaging: what `sam build` ships matches pyproject.toml, and every function but the API stays
framework-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jobline_local.template import REPO_ROOT, load_template, resources_of_type
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

WEB_STACK = ("fastapi", "starlette", "mangum", "aiohttp", "aioboto3")
"""Modules the queue-triggered functions and the shared layer must never import (the API
function's own stack, and dev-only async clients)."""

TEMPLATE = load_template()
FUNCTIONS = resources_of_type(TEMPLATE, "AWS::Serverless::Function")
LAYERS = resources_of_type(TEMPLATE, "AWS::Serverless::LayerVersion")
FRAMEWORK_FREE = sorted(name for name in FUNCTIONS if name != "ApiFunction")
"""Every function but the API: the worker, the ingest function, the dead-letter consumer."""


def pyproject() -> dict[str, Any]:
    """pyproject.toml as data."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def requirement_set(lines: list[str]) -> dict[str, str]:
    """Canonical name -> the rest of the requirement (extras, specifiers, markers)."""
    parsed: dict[str, str] = {}
    for line in lines:
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name not in parsed, f"{name} is listed twice"
        requirement.name = name
        parsed[name] = str(requirement)
    return parsed


def requirements_file(path: Path) -> dict[str, str]:
    """A requirements.txt as `requirement_set` (empty when the file does not exist)."""
    return requirement_set(path.read_text().splitlines()) if path.exists() else {}


def code_dir(function: str) -> Path:
    """The CodeUri folder of a function."""
    code_uri: str = FUNCTIONS[function]["Properties"]["CodeUri"]
    return REPO_ROOT / code_uri


def import_in_fresh_interpreter(
    modules: list[str], paths: list[Path], tmp_path: Path
) -> list[str]:
    """Import `modules` in a new interpreter that sees only `paths` (and the installed packages);
    return the names in its sys.modules afterwards."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(str(path) for path in paths),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "JOBLINE_TABLE_NAME": "jobline-packaging-table",
        "JOBLINE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/packaging",
    }
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    loaded: list[str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return loaded


def modules_in(folder: Path) -> list[str]:
    """Dotted names of every Python module under a code folder."""
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def top_level_names(folder: Path) -> set[str]:
    """Importable top-level packages and modules in a code folder."""
    return {
        path.stem
        for path in folder.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.is_file())
    }


def test_shared_requirements_are_the_project_dependencies_without_boto3() -> None:
    # Given the project's runtime dependencies
    dependencies = requirement_set(pyproject()["project"]["dependencies"])

    # When the shared layer's requirements file is read
    layer = requirements_file(REPO_ROOT / "shared" / "requirements.txt")

    # Then it lists the same requirements except boto3, which the Lambda runtime provides
    assert "boto3" in dependencies
    assert layer == {
        name: spec for name, spec in dependencies.items() if name != "boto3"
    }


def test_api_requirements_are_the_api_extra() -> None:
    # Given the project's `api` extra
    extra = requirement_set(pyproject()["project"]["optional-dependencies"]["api"])

    # When the API function's requirements file is read
    api = requirements_file(code_dir("ApiFunction") / "requirements.txt")

    # Then they are the same requirements
    assert api == extra
    assert {"fastapi", "mangum"} <= set(api)


def test_the_framework_free_functions_are_the_queue_triggered_ones() -> None:
    assert FRAMEWORK_FREE == ["DeadLetterFunction", "IngestFunction", "WorkerFunction"]


@pytest.mark.parametrize("function", FRAMEWORK_FREE)
def test_queue_function_requires_no_web_framework(function: str) -> None:
    # Given the function's requirements (none when it has no requirements file)
    requirements = requirements_file(code_dir(function) / "requirements.txt")

    # Then none of them is part of the API's web stack
    assert set(requirements) & set(WEB_STACK) == set()


@pytest.mark.parametrize("function", FRAMEWORK_FREE)
def test_queue_function_handler_imports_no_web_stack(
    function: str, tmp_path: Path
) -> None:
    # Given an interpreter that sees only what Lambda gives the function: the layer and its code
    paths = [REPO_ROOT / "shared", code_dir(function)]
    module = FUNCTIONS[function]["Properties"]["Handler"].rpartition(".")[0]

    # When the function's handler module is imported there
    modules = import_in_fresh_interpreter([module], paths, tmp_path)

    # Then it loaded, without another function's or the local runner's packages, and no web
    # framework or async client came with it
    assert module in modules
    others = {"jobline_api", "jobline_worker", "jobline_ingest", "jobline_dead_letters"}
    others.discard(module.split(".")[0])
    assert (others | {"jobline_local"}) & set(modules) == set()
    assert [name for name in modules if name.split(".")[0] in WEB_STACK] == []


def test_api_handler_imports_with_only_the_layer_and_its_own_code(
    tmp_path: Path,
) -> None:
    # Given an interpreter that sees only the layer and the API function's code
    paths = [REPO_ROOT / "shared", code_dir("ApiFunction")]
    module = FUNCTIONS["ApiFunction"]["Properties"]["Handler"].rpartition(".")[0]

    # When the API's handler module is imported there
    modules = import_in_fresh_interpreter([module], paths, tmp_path)

    # Then it loaded without the worker's or the local runner's packages
    assert module in modules
    assert {"jobline_worker", "jobline_local"} & set(modules) == set()


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_packages_import_no_web_stack(layer: str, tmp_path: Path) -> None:
    # Given every module of a layer
    content = REPO_ROOT / LAYERS[layer]["Properties"]["ContentUri"]
    layer_modules = modules_in(content)
    assert "jobline.bootstrap" in layer_modules

    # When they are all imported in a fresh interpreter that sees only the layer
    modules = import_in_fresh_interpreter(layer_modules, [content], tmp_path)

    # Then no web framework or async client came with them
    assert set(layer_modules) <= set(modules)
    assert [name for name in modules if name.split(".")[0] in WEB_STACK] == []


def test_function_and_layer_top_level_names_are_unique() -> None:
    # Given the top-level packages of every function's code and every layer
    owners: dict[str, list[str]] = {}
    folders = {name: code_dir(name) for name in FUNCTIONS} | {
        name: REPO_ROOT / resource["Properties"]["ContentUri"]
        for name, resource in LAYERS.items()
    }
    for resource, folder in folders.items():
        for package in top_level_names(folder):
            owners.setdefault(package, []).append(resource)

    # Then no name is shipped twice (one would shadow the other on Lambda's sys.path)
    assert {package: where for package, where in owners.items() if len(where) > 1} == {}
    assert set(owners) == {
        "jobline",
        "jobline_api",
        "jobline_worker",
        "jobline_ingest",
        "jobline_dead_letters",
    }
