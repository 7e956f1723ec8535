"""Where job types come from (`jobline.discovery`) and what a declaration must be: types from a
package outside Jobline's tree, found by entry point or by the JOBLINE_JOB_TYPE_MODULES setting;
a handler that cannot work refused when its type is loaded, never when a job runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jobline.bootstrap import default_registry, load_handlers
from jobline.config import JobTypeSettings
from jobline.discovery import discover
from jobline.errors import InvalidJobTypeDeclaration
from jobline.registry import JobContext, JobType, JobTypeRegistry, PermanentJobError

from tests.support.fakes import AnyInput
from tests.support.packages import write_entry_point, write_type_package


def _names(found: list[Any]) -> list[str]:
    return [item.job_type.name for item in found]


# ------------------------------------------------------------------------- discovery


def test_a_module_named_by_the_setting_adds_its_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a team's package in a folder of its own, named by JOBLINE_JOB_TYPE_MODULES
    package = write_type_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("JOBLINE_JOB_TYPE_MODULES", f" {package.name} ,")

    # When the deployment's registry is built
    registry = default_registry()

    # Then it holds the team's type besides the installed ones
    assert package.type_name in registry.names()
    assert set(registry.names()) - {package.type_name} == set(
        _names(discover(entry_points=True))
    )


def test_an_installed_distributions_entry_point_adds_its_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a distribution installed with an entry point naming its package
    package = write_type_package(tmp_path)
    write_entry_point(tmp_path, "team-types", {"words": package.name})
    monkeypatch.syspath_prepend(str(tmp_path))

    # Then discovery finds its type, naming where it came from
    found = {item.job_type.name: item.source for item in discover()}
    assert found[package.type_name] == f"entry point words = {package.name}"


def test_an_entry_point_may_name_one_type_or_a_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given entry points naming a sequence attribute and a single declaration
    package = write_type_package(tmp_path)
    write_entry_point(
        tmp_path,
        "team-types",
        {"all": f"{package.name}:JOB_TYPES", "one": f"{package.name}:JOB_TYPES"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    # Then the type is found once (one declaration, two ways)
    assert _names(discover()).count(package.type_name) == 1


def test_a_module_found_by_entry_point_and_setting_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_type_package(tmp_path)
    write_entry_point(tmp_path, "team-types", {"words": package.name})
    monkeypatch.syspath_prepend(str(tmp_path))

    registry = default_registry(JobTypeSettings(job_type_modules=(package.name,)))

    assert registry.names().count(package.type_name) == 1


def test_two_declarations_of_one_name_are_refused_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two packages declaring the same type name
    first = write_type_package(tmp_path / "a", type_name="twice")
    second = write_type_package(tmp_path / "b", type_name="twice")
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    monkeypatch.syspath_prepend(str(tmp_path / "b"))

    # Then discovery refuses them, naming both sources
    with pytest.raises(InvalidJobTypeDeclaration, match="declared twice") as caught:
        discover((first.name, second.name), entry_points=False)
    assert first.name in caught.value.message and second.name in caught.value.message


def test_an_example_type_cannot_be_declared_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_type_package(tmp_path, type_name="echo")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(InvalidJobTypeDeclaration, match="'echo': is declared twice"):
        discover((package.name,))


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("no_such_module_for_jobline", "cannot be imported: ModuleNotFoundError"),
        ("json", "module json has no JOB_TYPES"),
    ],
)
def test_a_module_that_declares_no_types_is_refused(source: str, problem: str) -> None:
    with pytest.raises(InvalidJobTypeDeclaration, match=problem):
        discover((source,), entry_points=False)


def test_a_module_whose_types_are_not_declarations_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not_types_here.py").write_text("JOB_TYPES = ['echo']\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(InvalidJobTypeDeclaration, match="not a JobType"):
        discover(("not_types_here",), entry_points=False)


def test_a_broken_entry_point_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_entry_point(tmp_path, "broken-types", {"gone": "no_such_package_xyz"})
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(
        InvalidJobTypeDeclaration, match="entry point gone = no_such_package_xyz"
    ):
        discover()


# ------------------------------------------------------- the declaration and its handler


def test_discovery_imports_the_declaration_not_the_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a type whose handler imports a heavy library
    package = write_type_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    # When its type is discovered and its payloads validated (as the API does)
    registry = default_registry(JobTypeSettings(job_type_modules=(package.name,)))
    job_type = registry.get(package.type_name)
    job_type.parse({"text": "two words"})
    job_type.input_schema()

    # Then neither the handler module nor its library was imported ...
    assert package.handler_module not in sys.modules
    assert package.heavy not in sys.modules

    # ... until the worker resolves the handler
    handler = registry.handler(package.type_name)
    assert callable(handler)
    assert {package.handler_module, package.heavy} <= set(sys.modules)


def _handle(payload: Any, context: JobContext) -> Any:
    return {}


def _declare(handler: Any) -> JobType[AnyInput]:
    return JobType(name="t", description="", input_model=AnyInput, handler=handler)


@pytest.mark.parametrize(
    ("handler", "problem"),
    [
        (None, "declares no handler"),
        (42, "is not callable"),
        (lambda payload: payload, r"cannot be called as handler\(payload, context\)"),
        (lambda: None, r"cannot be called as handler\(payload, context\)"),
        ("not a path", "is not an import path"),
        ("module.without.function", "is not an import path"),
    ],
    ids=["none", "not-callable", "one-argument", "no-argument", "text", "no-colon"],
)
def test_a_declaration_that_cannot_work_is_refused_at_once(
    handler: Any, problem: str
) -> None:
    with pytest.raises(InvalidJobTypeDeclaration, match=problem) as caught:
        _declare(handler)
    assert caught.value.job_type == "t"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("no_such_module_xyz:run", "cannot import handler module 'no_such_module_xyz'"),
        ("json:no_such_function", "json has no attribute 'no_such_function'"),
        ("json:__doc__", "is not callable"),
        ("json:dumps", r"cannot be called as handler\(payload, context\)"),
        ("operator:add", None),
        ("tests.unit.test_discovery:_handle", None),
    ],
)
def test_a_handler_path_is_checked_when_resolved(
    path: str, problem: str | None
) -> None:
    # Given a registry with a type whose handler is an import path
    registry = JobTypeRegistry([_declare(path)])

    # Then resolving every handler (the worker's init) refuses one that cannot work
    if problem is None:
        registry.resolve_all()
        return
    with pytest.raises(InvalidJobTypeDeclaration, match=problem):
        registry.resolve_all()


def test_a_handler_with_a_wrong_signature_is_refused_when_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_type_package(tmp_path)
    (tmp_path / package.name / "handler.py").write_text(
        "def count_words(payload):\n    return {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = default_registry(JobTypeSettings(job_type_modules=(package.name,)))

    with pytest.raises(InvalidJobTypeDeclaration, match=r"signature is \(payload\)"):
        registry.resolve_all()


def test_the_worker_refuses_to_start_with_a_handler_that_cannot_work(
    tmp_path: Path,
) -> None:
    # Given a type whose handler module cannot be imported
    package = write_type_package(tmp_path)
    (tmp_path / package.name / "handler.py").write_text("import no_such_library_xyz\n")

    # When the worker's handler module is imported (its init), in a fresh interpreter
    completed = subprocess.run(
        [sys.executable, "-c", "import jobline_worker.handler"],
        env={
            **os.environ,
            "PYTHONPATH": str(tmp_path),
            "JOBLINE_JOB_TYPE_MODULES": package.name,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it stops there, naming the type and the cause
    assert completed.returncode != 0
    assert "InvalidJobTypeDeclaration" in completed.stderr
    assert f"job type '{package.type_name}'" in completed.stderr
    assert "no_such_library_xyz" in completed.stderr


def test_load_handlers_resolves_every_discovered_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_type_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("JOBLINE_JOB_TYPE_MODULES", package.name)

    load_handlers()

    assert package.handler_module in sys.modules


def test_run_refuses_an_async_handler_and_a_plain_one_returning_an_awaitable() -> None:
    async def asynchronous(payload: Any, context: JobContext) -> Any:
        return {}

    async def later() -> dict[str, Any]:
        return {}

    def sneaky(payload: Any, context: JobContext) -> Any:
        return later()

    context = JobContext(job_id="0" * 32, job_type="t", attempt=1, max_attempts=1)
    with pytest.raises(TypeError, match="run_async"):
        _declare(asynchronous).run({}, context)
    with pytest.raises(PermanentJobError, match="declare it `async def`"):
        _declare(sneaky).run({}, context)
