"""The Makefile's build-<LogicalId> targets, run as `sam build` runs them (`BuildMethod: makefile`):
from a copy of the resource's code folder, with ARTIFACTS_DIR set.

The tests run them with the interpreter running the tests (`make build` uses python3.12) and with
the locks emptied, so nothing is downloaded; what is checked is what the targets do to the code:
every module ships bytecode, unchecked-hash, recording the module's path on Lambda; the layer's
code goes under python/; caches and lock files stay behind."""

from __future__ import annotations

import importlib.util
import marshal
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from jobline.discovery import ENTRY_POINT_GROUP
from jobline_api.ui import ASSETS
from jobline_local.template import REPO_ROOT, load_template, resources_of_type

from tools.artifact import FLAG_HASH_BASED, NOT_SHIPPED

TEMPLATE = load_template()
BUILT: dict[str, dict[str, Any]] = {
    **resources_of_type(TEMPLATE, "AWS::Serverless::Function"),
    **resources_of_type(TEMPLATE, "AWS::Serverless::LayerVersion"),
}
"""Everything `sam build` builds: every function and the layer."""
RUNTIME_DIRS = {
    "AWS::Serverless::Function": "/var/task",
    "AWS::Serverless::LayerVersion": "/opt/python",
}
"""Where Lambda puts a function's code, and a Python layer's python/ folder."""


def code_folder(logical_id: str) -> Path:
    props = BUILT[logical_id]["Properties"]
    code: str = props.get("CodeUri", props.get("ContentUri"))
    return REPO_ROOT / code


def module_root(logical_id: str, artifact: Path) -> Path:
    """Where the artifact's modules are: a layer's under python/."""
    is_layer = BUILT[logical_id]["Type"] == "AWS::Serverless::LayerVersion"
    return artifact / "python" if is_layer else artifact


def make_target(logical_id: str, source: Path, artifact: Path) -> None:
    """`make build-<LogicalId>` as sam build runs it (cwd: a copy of the code folder)."""
    completed = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "--makefile",
            str(REPO_ROOT / "Makefile"),
            f"build-{logical_id}",
            f"ARTIFACTS_DIR={artifact}",
            f"LAMBDA_PYTHON={sys.executable}",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each resource built once, from a copy of its folder (caches and all, as sam copies it)
    whose lock is emptied."""
    root = tmp_path_factory.mktemp("build")
    built = {}
    for logical_id in sorted(BUILT):
        source = root / "src" / logical_id
        shutil.copytree(code_folder(logical_id), source)
        lock = source / "requirements.lock"
        if lock.exists():
            lock.write_text("# emptied by the test: nothing to download\n")
        artifact = root / "out" / logical_id
        make_target(logical_id, source, artifact)
        built[logical_id] = artifact
    return built


@pytest.mark.parametrize("logical_id", sorted(BUILT))
def test_sam_builds_every_function_and_the_layer_with_the_makefile(
    logical_id: str,
) -> None:
    # Given the resource's build metadata
    metadata = BUILT[logical_id]["Metadata"]

    # Then sam build runs this repository's Makefile (its build-<LogicalId> target) for it
    assert metadata["BuildMethod"] == "makefile"
    assert (REPO_ROOT / metadata["ContextPath"] / "Makefile").is_file()
    assert f"build-{logical_id}" in (REPO_ROOT / "Makefile").read_text()


@pytest.mark.parametrize("logical_id", sorted(BUILT))
def test_every_module_ships_unchecked_hash_bytecode(
    logical_id: str, artifacts: dict[str, Path]
) -> None:
    # Given the built artifact's modules
    root = module_root(logical_id, artifacts[logical_id])
    sources = sorted(root.rglob("*.py"))
    assert sources

    for source in sources:
        # When its bytecode is read
        pyc = (
            source.parent
            / "__pycache__"
            / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
        )
        assert pyc.is_file(), f"no {pyc.name} for {source.relative_to(root)}"
        data = pyc.read_bytes()

        # Then it is this interpreter's, hash-based without source check (PEP 552 flags 0b01:
        # never compared to the source, so a read-only folder costs no compile and no stat), and
        # hashes the shipped source
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], "little") == FLAG_HASH_BASED
        assert data[8:16] == importlib.util.source_hash(source.read_bytes())


@pytest.mark.parametrize("logical_id", sorted(BUILT))
def test_bytecode_names_the_module_where_lambda_puts_it(
    logical_id: str, artifacts: dict[str, Path]
) -> None:
    # Given one compiled module of the artifact
    root = module_root(logical_id, artifacts[logical_id])
    source = min(root.rglob("*.py"))
    pyc = (
        source.parent
        / "__pycache__"
        / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
    )

    # Then its code object names the path on Lambda, not the build folder (the same bytes from
    # any checkout: an unchanged build uploads nothing new)
    code = marshal.loads(pyc.read_bytes()[16:])
    runtime_dir = RUNTIME_DIRS[BUILT[logical_id]["Type"]]
    assert code.co_filename == f"{runtime_dir}/{source.relative_to(root)}"


def test_the_layer_ships_its_code_under_python(artifacts: dict[str, Path]) -> None:
    # Given the built layer
    layer = artifacts["SharedLayer"]

    # Then everything is under python/ (what Lambda puts on sys.path from /opt)
    assert [path.name for path in layer.iterdir()] == ["python"]
    assert (layer / "python" / "jobline" / "__init__.py").is_file()


def test_the_api_ships_every_file_of_the_dashboard(artifacts: dict[str, Path]) -> None:
    # Given the built API function's static folder (the router reads it with importlib.resources)
    static = artifacts["ApiFunction"] / "jobline_api" / "static"
    source = code_folder("ApiFunction") / "jobline_api" / "static"

    # Then it holds exactly the files the router serves (the page and all its modules), unchanged
    assert sorted(path.name for path in static.iterdir()) == sorted(ASSETS)
    for name in ASSETS:
        assert (static / name).read_bytes() == (source / name).read_bytes(), name


@pytest.mark.parametrize("logical_id", sorted(BUILT))
def test_caches_and_locks_are_not_shipped(
    logical_id: str, artifacts: dict[str, Path]
) -> None:
    # Given every file of the built artifact (the copied folder had the test run's caches)
    files = [path for path in artifacts[logical_id].rglob("*") if path.is_file()]

    # Then no lock or requirements file is in it, and no bytecode of another interpreter
    assert [
        f
        for f in files
        if f.name.endswith(".lock") or f.name.startswith("requirements")
    ] == []
    tag = sys.implementation.cache_tag
    assert [f for f in files if f.suffix == ".pyc" and f".{tag}." not in f.name] == []
    assert "__pycache__" in NOT_SHIPPED


def test_the_job_types_layer_ships_their_entry_points(
    artifacts: dict[str, Path],
) -> None:
    # Given the job-types layer as built, and the entry points job_types/pyproject.toml declares
    python = artifacts["JobTypesLayer"] / "python"
    with (REPO_ROOT / "job_types" / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    declared = project["entry-points"][ENTRY_POINT_GROUP]

    # Then importlib.metadata finds them there as on Lambda's path (jobline.discovery reads it),
    # next to the packages they name, and the layer ships no pyproject.toml or egg-info
    [distribution] = metadata.distributions(path=[str(python)])
    assert distribution.metadata["Name"] == project["name"]
    shipped = distribution.entry_points.select(group=ENTRY_POINT_GROUP)
    assert {point.name: point.value for point in shipped} == declared
    for value in declared.values():
        assert (python / value.partition(":")[0].split(".")[0]).is_dir()
    assert not (python / "pyproject.toml").exists()
    assert list(python.glob("*.egg-info")) == []
