"""Build one Lambda artifact (a function's code folder or the shared layer) into a folder.

`sam build` runs it through the Makefile's `build-<LogicalId>` targets (`Metadata: BuildMethod:
makefile` in template.yaml), in a copy of the resource's CodeUri/ContentUri, with the Lambda
runtime's interpreter (python3.12):

    python3.12 tools/artifact.py --source . --target "$ARTIFACTS_DIR" [--lock requirements.lock]

1. the lock's distributions are installed into the target exactly as pinned (`--require-hashes`,
   `--no-deps`), as wheels built for Lambda (`--platform manylinux2014_x86_64 --python-version 3.12
   --implementation cp --only-binary=:all:`), without their console scripts;
2. the source folder's files are copied next to them, except bytecode caches and lock files;
3. every `.py` is compiled with `--invalidation-mode unchecked-hash` (Lambda's code folders are
   read-only: without shipped bytecode every cold start compiles every module it imports; an
   unchecked-hash `.pyc` is used without even a stat of its source), with the path the module
   has on Lambda (`--runtime-dir`) recorded in it, so the bytes do not depend on the build folder;
4. the result is checked: every `.py` has its `__pycache__/<name>.<cache tag>.pyc`, unchecked-hash;
5. with `--entry-points PYPROJECT` (the job-types layer), the project's entry points are shipped as
   an installed distribution's metadata (`<name>-<version>.dist-info`: METADATA, entry_points.txt),
   which `importlib.metadata` reads on Lambda as it reads the virtualenv's (jobline.discovery).

Standard library only: it runs under python3.12 outside any virtualenv.
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

LAMBDA_PYTHON_VERSION = "3.12"
"""The template's runtime (python3.12): what the lock files are resolved for and pip installs."""
LAMBDA_PLATFORM = "manylinux2014_x86_64"
"""Wheels for the template's architecture (x86_64) on Lambda's Amazon Linux 2023 (glibc 2.34)."""
LAMBDA_IMPLEMENTATION = "cp"

FLAG_HASH_BASED = 0b01
FLAG_CHECK_SOURCE = 0b10
"""The pyc header's flags word (bytes 4..8, PEP 552): unchecked-hash is hash-based only."""

NOT_SHIPPED = (
    "__pycache__",
    "*.pyc",
    "*.pyo",
    "*.lock",
    "requirements*.txt",
    ".*",
    "pyproject.toml",
    "*.egg-info",
)
"""What a code folder may hold that never goes into its artifact."""


def pip_install(lock: Path, target: Path) -> None:
    """Install exactly the lock's pins for Lambda's Python and platform into `target`."""
    command = [
        sys.executable,
        "-I",  # nothing from the code folder (the working directory) or PYTHON* variables
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--require-hashes",
        "--no-compile",
        "--only-binary=:all:",
        "--platform",
        LAMBDA_PLATFORM,
        "--implementation",
        LAMBDA_IMPLEMENTATION,
        "--python-version",
        LAMBDA_PYTHON_VERSION,
        "--target",
        str(target),
        "--requirement",
        str(lock),
    ]
    subprocess.run(command, check=True)
    # Console scripts (dotenv, fastapi...): their shebang names the build's interpreter and
    # nothing on Lambda runs them.
    shutil.rmtree(target / "bin", ignore_errors=True)


def has_requirements(lock: Path) -> bool:
    """Whether a lock file pins anything (a missing or comment-only file pins nothing)."""
    if not lock.is_file():
        return False
    return any(
        line.strip() and not line.lstrip().startswith(("#", "--"))
        for line in lock.read_text().splitlines()
    )


def copy_sources(source: Path, target: Path) -> None:
    """Copy the code folder's files (not its caches or lock files) into `target`."""
    for entry in sorted(source.iterdir()):
        if any(entry.match(pattern) for pattern in NOT_SHIPPED):
            continue
        destination = target / entry.name
        if destination.exists():
            raise SystemExit(
                f"{entry.name} is both in {source} and installed from the lock"
            )
        if entry.is_dir():
            shutil.copytree(
                entry, destination, ignore=shutil.ignore_patterns(*NOT_SHIPPED)
            )
        else:
            shutil.copy2(entry, destination)


def compile_tree(target: Path, runtime_dir: str) -> None:
    """Compile every module in `target` to unchecked-hash bytecode."""
    ok = compileall.compile_dir(
        str(target),
        ddir=runtime_dir,
        force=True,
        quiet=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise SystemExit(f"compileall failed in {target}")


def missing_bytecode(target: Path, tag: str | None = None) -> list[str]:
    """Every `.py` under `target` without an unchecked-hash `.pyc` for the interpreter whose cache
    tag is `tag` (this one's by default, e.g. cpython-312)."""
    tag = tag or sys.implementation.cache_tag
    missing = []
    for source in sorted(target.rglob("*.py")):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if not pyc.is_file():
            missing.append(f"{source.relative_to(target)}: no {pyc.name}")
            continue
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        if flags != FLAG_HASH_BASED:
            missing.append(f"{source.relative_to(target)}: pyc flags {flags:#04b}")
    return missing


def write_entry_points(pyproject: Path, target: Path) -> Path:
    """The project's metadata as an installed distribution's (`importlib.metadata` finds it on
    the path): its name, version and `[project.entry-points]`. Returns the dist-info folder."""
    with pyproject.open("rb") as handle:
        project = tomllib.load(handle)["project"]
    name, version = project["name"], project["version"]
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    groups = project.get("entry-points", {})
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n"
            + "".join(f"{key} = {value}\n" for key, value in points.items())
            + "\n"
            for group, points in groups.items()
        )
    )
    (info / "INSTALLER").write_text("jobline tools/artifact.py\n")
    return info


def build(
    source: Path,
    target: Path,
    lock: Path | None,
    runtime_dir: str,
    entry_points: Path | None = None,
) -> None:
    """Steps 1-5 of the module docstring."""
    target.mkdir(parents=True, exist_ok=True)
    if lock is not None and has_requirements(lock):
        pip_install(lock, target)
    copy_sources(source, target)
    if entry_points is not None:
        write_entry_points(entry_points, target)
    compile_tree(target, runtime_dir)
    problems = missing_bytecode(target)
    if problems:
        raise SystemExit("modules without bytecode:\n  " + "\n  ".join(problems))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="the code folder")
    parser.add_argument("--target", type=Path, required=True, help="the artifact")
    parser.add_argument("--lock", type=Path, help="what to install (pins + hashes)")
    parser.add_argument(
        "--runtime-dir",
        default="/var/task",
        help="where the target is on Lambda (/var/task; /opt/python for a layer)",
    )
    parser.add_argument(
        "--entry-points",
        type=Path,
        help="a pyproject.toml whose name, version and entry points to ship (dist-info)",
    )
    args = parser.parse_args(argv)
    if not str(args.target).strip(os.sep):
        parser.error("--target is empty (is ARTIFACTS_DIR set?)")
    build(
        args.source.resolve(),
        args.target,
        args.lock,
        args.runtime_dir,
        args.entry_points,
    )


if __name__ == "__main__":
    main()
