"""Packaging: what `sam build` ships is what the lock files pin, the locks agree with
pyproject.toml and with each other, nothing is shipped twice, and every function but the API stays
framework-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from jobline_local.template import REPO_ROOT, load_template, resources_of_type
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from tools.artifact import LAMBDA_PYTHON_VERSION
from tools.lockfile import (
    API_LOCK,
    DEV_LOCK,
    JOB_TYPES_LOCK,
    JOB_TYPES_PROJECT,
    LAMBDA_ENVIRONMENT,
    LAYER_LOCK,
    RUNTIME_PROVIDED,
    WORKER_LOCK,
    Pin,
    closure,
    declared,
    pins_for,
    read_lock,
)

WEB_STACK = ("fastapi", "starlette", "mangum", "aiohttp", "aioboto3")
"""Modules the queue-triggered functions and the shared layer must never import (the API
function's own stack, and dev-only async clients)."""

TEMPLATE = load_template()
FUNCTIONS = resources_of_type(TEMPLATE, "AWS::Serverless::Function")
LAYERS = resources_of_type(TEMPLATE, "AWS::Serverless::LayerVersion")
FRAMEWORK_FREE = sorted(name for name in FUNCTIONS if name != "ApiFunction")
"""Every function but the API: the worker, the ingest function, the dead-letter consumer."""
HERE: dict[str, str] = {
    name: str(value) for name, value in default_environment().items()
}
"""Marker values of the interpreter running the tests (the development virtualenv's)."""


def pyproject() -> dict[str, Any]:
    """pyproject.toml as data."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


PROJECT = pyproject()["project"]
with JOB_TYPES_PROJECT.open("rb") as _handle:
    JOB_TYPES = tomllib.load(_handle)["project"]
DECLARATIONS = declared(JOB_TYPES["dependencies"])
"""What the job types' declarations need (job_types/pyproject.toml): every function gets it."""
HANDLERS = declared(JOB_TYPES.get("optional-dependencies", {}).get("worker", []))
"""What only the job types' handlers need (its `worker` extra): the worker alone gets it."""
DEPENDENCIES = declared(PROJECT["dependencies"])
API_EXTRA = declared(PROJECT["optional-dependencies"]["api"])
DEV_EXTRA = declared(PROJECT["optional-dependencies"]["dev"])
LAYER_PINS = pins_for(LAYER_LOCK, LAMBDA_ENVIRONMENT)
API_PINS = pins_for(API_LOCK, LAMBDA_ENVIRONMENT)
JOB_TYPES_PINS = pins_for(JOB_TYPES_LOCK, LAMBDA_ENVIRONMENT)
WORKER_PINS = pins_for(WORKER_LOCK, LAMBDA_ENVIRONMENT)
DEV_PINS = pins_for(DEV_LOCK, HERE)
RUNTIME_CLOSURE = closure(
    [r for r in DEPENDENCIES if canonicalize_name(r.name) in RUNTIME_PROVIDED],
    LAMBDA_ENVIRONMENT,
)
"""boto3 and what it needs: the Lambda runtime's."""


def unshipped(requirements: list[Requirement]) -> list[Requirement]:
    """Requirements without those the Lambda runtime provides."""
    return [
        r for r in requirements if canonicalize_name(r.name) not in RUNTIME_PROVIDED
    ]


def assert_pins_satisfy(
    requirements: list[Requirement], pins: Mapping[NormalizedName, Pin], lock: Path
) -> None:
    """Every requirement is pinned, at a version its specifier allows."""
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock.name} does not pin {name}"
        version = pins[name].version
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock.name}: {name}=={version} does not satisfy {requirement}"
        )


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


# ---------------------------------------------------------------------------- locks
@pytest.mark.parametrize("lock", [LAYER_LOCK, API_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_lock_entry_is_an_exact_pin_with_hashes(lock: Path) -> None:
    # Given a lock file (read_lock rejects anything but `name==version`)
    pins = read_lock(lock)

    # Then every entry carries the hashes pip checks on install
    assert pins
    assert [pin.name for pin in pins if not pin.hashes] == []
    assert all(h.startswith("sha256:") for pin in pins for h in pin.hashes)


def test_the_layer_lock_is_the_project_dependencies_without_boto3() -> None:
    # Given the project's runtime dependencies
    assert "boto3" in {canonicalize_name(r.name) for r in DEPENDENCIES}
    shipped = unshipped(DEPENDENCIES)

    # Then the layer lock pins each of them (boto3 aside) at a version it allows ...
    assert_pins_satisfy(shipped, LAYER_PINS, LAYER_LOCK)
    # ... and exactly what they need on Lambda's Python; of what the runtime provides, only
    # botocore and what it needs, which the layer ships on purpose (its data trimmed, it shadows
    # the runtime's: docs/benchmarks.md), never boto3 itself or its S3 transfer manager
    assert set(LAYER_PINS) == closure(shipped, LAMBDA_ENVIRONMENT)
    botocore = closure([Requirement("botocore")], LAMBDA_ENVIRONMENT)
    assert "botocore" in LAYER_PINS
    assert set(LAYER_PINS) & RUNTIME_CLOSURE == botocore
    assert {"boto3", "s3transfer"} & set(LAYER_PINS) == set()


def test_the_api_lock_is_the_api_extra_less_what_the_layer_ships() -> None:
    # Given the `api` extra
    assert {"fastapi", "mangum"} <= {canonicalize_name(r.name) for r in API_EXTRA}

    # Then the API lock pins each of it at a version it allows ...
    assert_pins_satisfy(API_EXTRA, API_PINS, API_LOCK)
    # ... and, with the layer, exactly what it needs on Lambda's Python
    needed = closure(API_EXTRA, LAMBDA_ENVIRONMENT) - RUNTIME_CLOSURE
    assert set(API_PINS) == needed - set(LAYER_PINS)
    assert needed <= set(API_PINS) | set(LAYER_PINS)


def test_the_job_types_lock_is_their_declarations_needs_less_the_layer() -> None:
    # Then the job-types layer's lock pins what the declarations need, with the shared layer
    assert_pins_satisfy(DECLARATIONS, JOB_TYPES_PINS, JOB_TYPES_LOCK)
    needed = closure(unshipped(DECLARATIONS), LAMBDA_ENVIRONMENT) - RUNTIME_CLOSURE
    assert set(JOB_TYPES_PINS) == needed - set(LAYER_PINS)


def test_the_worker_lock_is_the_handlers_needs_less_the_layers() -> None:
    # Then the worker's lock pins what only the handlers need, with both layers ...
    assert_pins_satisfy(HANDLERS, WORKER_PINS, WORKER_LOCK)
    needed = closure(unshipped(HANDLERS), LAMBDA_ENVIRONMENT) - RUNTIME_CLOSURE
    assert set(WORKER_PINS) == needed - set(LAYER_PINS) - set(JOB_TYPES_PINS)
    # ... and the API installs none of it: its lock is the api extra's alone
    assert set(WORKER_PINS) & set(API_PINS) == set()


def test_the_api_artifact_and_the_layer_install_disjoint_distributions() -> None:
    # Given what the API function's build and the layer's build install (their locks)
    api, layer = set(API_PINS), set(LAYER_PINS)

    # Then no distribution is installed by both: the API function's path holds the layer, so a
    # second copy could only shadow it (and the layer's pydantic was shipped twice before)
    assert api and layer
    assert api & layer == set()


def test_the_dev_lock_is_the_whole_project_here() -> None:
    # Given everything the development virtualenv installs
    declared_all = DEPENDENCIES + API_EXTRA + DEV_EXTRA + DECLARATIONS + HANDLERS

    # Then the dev lock pins each declared requirement at a version it allows ...
    assert_pins_satisfy(declared_all, DEV_PINS, DEV_LOCK)
    # ... and, on this interpreter, exactly what they need: nothing that nothing needs
    assert set(DEV_PINS) == closure(declared_all, HERE)


def test_the_virtualenv_holds_exactly_the_dev_lock() -> None:
    # Given the distributions installed here (`make` installs requirements-dev.lock)
    for name, pin in DEV_PINS.items():
        # Then each pin is installed at its version
        assert metadata.version(name) == pin.version, name


@pytest.mark.parametrize(
    ("lock", "pins"),
    [
        (LAYER_LOCK, LAYER_PINS),
        (API_LOCK, API_PINS),
        (JOB_TYPES_LOCK, JOB_TYPES_PINS),
        (WORKER_LOCK, WORKER_PINS),
    ],
    ids=["layer", "api", "job-types", "worker"],
)
def test_lambda_locks_ship_what_the_tests_run(
    lock: Path, pins: Mapping[NormalizedName, Pin]
) -> None:
    # Then every distribution a Lambda artifact installs is the version the tests ran with
    assert {name: pin.version for name, pin in pins.items()} == {
        name: DEV_PINS[canonicalize_name(name)].version for name in pins
    }, lock.name


def test_lambda_locks_are_resolved_for_the_template_runtime() -> None:
    # Given the functions' runtime and architecture
    functions = TEMPLATE["Globals"]["Function"]

    # Then the locks (and tools/artifact.py's pip install) target that Python on x86_64
    assert functions["Runtime"] == f"python{LAMBDA_PYTHON_VERSION}"
    assert functions["Architectures"] == ["x86_64"]
    assert LAMBDA_ENVIRONMENT["platform_machine"] == "x86_64"
    for layer in LAYERS.values():
        assert layer["Properties"]["CompatibleRuntimes"] == [functions["Runtime"]]


WORKERS = ("WorkerFunction", "LongWorkerFunction")
"""The functions that run handlers (one per lane: jobline.lanes), from one code folder."""


@pytest.mark.parametrize(
    "function", [name for name in FRAMEWORK_FREE if name not in WORKERS]
)
def test_queue_function_installs_nothing_of_its_own(function: str) -> None:
    # Then a queue-triggered function other than the worker has no lock: it runs on the layers
    # alone (the worker's lock holds what only the handlers need)
    assert not (code_dir(function) / "requirements.lock").exists()
    assert not (code_dir(function) / "requirements.txt").exists()


def test_the_framework_free_functions_are_the_queue_triggered_ones() -> None:
    assert FRAMEWORK_FREE == [
        "DeadLetterFunction",
        "IngestFunction",
        "LongWorkerFunction",
        "OutboxFunction",
        "OutboxRecoveryFunction",
        "WorkerFunction",
    ]


@pytest.mark.parametrize("function", FRAMEWORK_FREE)
def test_queue_function_requires_no_web_framework(function: str) -> None:
    # Given what the function runs on: the layers' pins, and the worker's own (the handlers')
    requirements = set(LAYER_PINS) | set(JOB_TYPES_PINS)
    if function in WORKERS:
        requirements |= set(WORKER_PINS)

    # Then none of them is part of the API's web stack
    assert requirements & set(WEB_STACK) == set()


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
    # Given every module of a layer (the job types' layer runs on the shared one)
    content = REPO_ROOT / LAYERS[layer]["Properties"]["ContentUri"]
    layer_modules = modules_in(content)
    shared = REPO_ROOT / LAYERS["SharedLayer"]["Properties"]["ContentUri"]
    assert layer_modules
    assert "jobline.bootstrap" in modules_in(shared)

    # When they are all imported in a fresh interpreter that sees only the layers
    modules = import_in_fresh_interpreter(
        layer_modules, sorted({content, shared}), tmp_path
    )

    # Then no web framework or async client came with them
    assert set(layer_modules) <= set(modules)
    assert [name for name in modules if name.split(".")[0] in WEB_STACK] == []


def test_function_and_layer_top_level_names_are_unique() -> None:
    # Given the top-level packages of every code folder (two functions may share one: the
    # outbox's dispatcher and recovery) and every layer
    owners: dict[str, list[Path]] = {}
    folders = {code_dir(name) for name in FUNCTIONS} | {
        REPO_ROOT / resource["Properties"]["ContentUri"] for resource in LAYERS.values()
    }
    for folder in sorted(folders):
        for package in top_level_names(folder):
            owners.setdefault(package, []).append(folder)

    # Then no name is shipped twice (one would shadow the other on Lambda's sys.path)
    assert {package: where for package, where in owners.items() if len(where) > 1} == {}
    job_types = REPO_ROOT / LAYERS["JobTypesLayer"]["Properties"]["ContentUri"]
    assert set(owners) == {
        "jobline",
        "jobline_api",
        "jobline_worker",
        "jobline_ingest",
        "jobline_dead_letters",
        "jobline_outbox",
        *top_level_names(job_types),
    }
