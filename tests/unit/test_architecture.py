"""The layers of `shared/jobline` are folders, and these tests hold them: only the adapters
(`jobline/aws/`) talk to AWS, a use case never imports an adapter, and the pure core imports
neither. Imports are read from the source (every `import` and `from ... import`, also inside
functions and `TYPE_CHECKING` blocks)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
JOBLINE = REPO / "shared" / "jobline"
PURE_CORE = (
    "models.py",
    "transition.py",
    "lifecycle.py",
    "creation.py",
    "validation.py",
    "clock.py",
    "backoff.py",
    "limits.py",
)
AWS_SDK = ("botocore", "boto3", "mypy_boto3_*")
"""Module names; a trailing `*` matches any top-level package that starts so."""


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    """ "<file> imports <module>" for each import of a `forbidden` module (or one inside it)."""
    return [
        f"{path.relative_to(REPO) if REPO in path.parents else path.name} imports {name}"
        for path in files
        for name in sorted(imported_modules(path))
        if any(_within(name, f) for f in forbidden)
    ]


def _within(name: str, forbidden: str) -> bool:
    if forbidden.endswith("*"):
        return name.split(".")[0].startswith(forbidden[:-1])
    return name == forbidden or name.startswith(forbidden + ".")


def python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_the_layers_are_folders() -> None:
    assert (JOBLINE / "aws" / "__init__.py").is_file()
    assert (JOBLINE / "usecases" / "__init__.py").is_file()
    for name in PURE_CORE:
        assert (JOBLINE / name).is_file(), name


def test_only_the_adapters_import_the_aws_sdk() -> None:
    outside = [p for p in python_files(JOBLINE) if JOBLINE / "aws" not in p.parents]
    assert JOBLINE / "bootstrap.py" in outside
    assert offenders(outside, AWS_SDK) == []


def test_entry_points_never_import_the_aws_sdk() -> None:
    functions = python_files(REPO / "functions")
    assert offenders(functions, AWS_SDK) == []


def test_use_cases_never_import_an_adapter_or_the_composition_root() -> None:
    usecases = python_files(JOBLINE / "usecases")
    assert usecases, "no use cases found"
    forbidden = ("jobline.aws", "jobline.bootstrap", "jobline.service")
    assert offenders(usecases, forbidden) == []


def test_adapters_never_import_a_use_case() -> None:
    adapters = python_files(JOBLINE / "aws")
    assert offenders(adapters, ("jobline.usecases", "jobline.bootstrap")) == []


def test_the_pure_core_imports_no_use_case_adapter_or_framework() -> None:
    core = [JOBLINE / name for name in PURE_CORE]
    forbidden = (
        "jobline.aws",
        "jobline.usecases",
        "jobline.bootstrap",
        "jobline.service",
        "jobline.config",
        "jobline.logging",
        "fastapi",
        "starlette",
        *AWS_SDK,
    )
    assert offenders(core, forbidden) == []


def test_the_checks_see_imports_inside_functions_and_type_checking_blocks(
    tmp_path: Path,
) -> None:
    # Given a module that imports the SDK only lazily and for type checking
    module = tmp_path / "lazy.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mypy_boto3_sqs.client import SQSClient\n"
        "def f():\n    import botocore.session\n"
    )
    # Then every such import is found
    assert offenders([module], AWS_SDK) == [
        "lazy.py imports botocore.session",
        "lazy.py imports mypy_boto3_sqs.client",
        "lazy.py imports mypy_boto3_sqs.client.SQSClient",
    ]
