"""Build one Lambda artifact (a function's code folder or the shared layer) into a folder.

`sam build` runs it through the Makefile's `build-<LogicalId>` targets (`Metadata: BuildMethod:
makefile` in template.yaml), in a copy of the resource's CodeUri/ContentUri, with the Lambda
runtime's interpreter (python3.12):

    python3.12 tools/artifact.py --source . --target "$ARTIFACTS_DIR" [--lock requirements.lock]

1. the lock's distributions are installed into the target exactly as pinned (`--require-hashes`,
   `--no-deps`), as wheels built for Lambda (`--platform manylinux2014_x86_64 --python-version 3.12
   --implementation cp --only-binary=:all:`), without their console scripts;
2. botocore's data, when botocore is installed, is trimmed to the services of `BOTOCORE_SERVICES`:
   their model folders, and their entries in `endpoints.json` (botocore ships ~410 services,
   ~25 MB, and lists and parses them at a cold start; `trim_botocore_data`);
3. the source folder's files are copied next to them, except bytecode caches and lock files;
4. every `.py` is compiled with `--invalidation-mode unchecked-hash` (Lambda's code folders are
   read-only: without shipped bytecode every cold start compiles every module it imports; an
   unchecked-hash `.pyc` is used without even a stat of its source), with the path the module
   has on Lambda (`--runtime-dir`) recorded in it, so the bytes do not depend on the build folder;
5. the result is checked: every `.py` has its `__pycache__/<name>.<cache tag>.pyc`, unchecked-hash;
6. with `--entry-points PYPROJECT` (the job-types layer), the project's entry points are shipped as
   an installed distribution's metadata (`<name>-<version>.dist-info`: METADATA, entry_points.txt),
   which `importlib.metadata` reads on Lambda as it reads the virtualenv's (jobline.discovery).

Standard library only: it runs under python3.12 outside any virtualenv.
"""

from __future__ import annotations

import argparse
import base64
import compileall
import gzip
import hashlib
import json
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

CLIENT_SERVICES = frozenset(
    {"dynamodb", "dynamodbstreams", "sqs", "ssm", "lambda", "s3"}
)
"""The services `jobline.aws.clients` creates clients for (tests/unit/test_botocore_data.py keeps
the two equal)."""
PLANNED_SERVICES = frozenset({"scheduler", "events"})
"""Services whose clients the issues in progress add (a client's service must ship: move it to
CLIENT_SERVICES when `jobline.aws.clients` creates it)."""
CREDENTIAL_SERVICES = frozenset({"sts", "sso", "sso-oidc"})
"""What botocore's credential chain calls when credentials come from a role to assume, a web
identity or an SSO profile (not on Lambda, whose credentials are in the environment)."""
BOTOCORE_SERVICES = CLIENT_SERVICES | PLANNED_SERVICES | CREDENTIAL_SERVICES
"""The botocore service models an artifact ships (`trim_botocore_data`)."""
BOTOCORE_DATA_FILES = frozenset(
    {
        "_retry.json",
        "endpoints.json",
        "partitions.json",
        "sdk-default-configuration.json",
    }
)
"""The files of botocore/data beside the service folders, all kept (endpoints.json trimmed)."""

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


def _endpoint_prefixes(service_folder: Path) -> set[str]:
    """The endpoint prefixes (endpoints.json's service keys) of every API version of a service."""
    prefixes = set()
    for model in service_folder.glob("*/service-2.json*"):
        opener = gzip.open if model.suffix == ".gz" else open
        with opener(model, "rt", encoding="utf-8") as handle:
            metadata = json.load(handle)["metadata"]
        prefixes.add(metadata.get("endpointPrefix", service_folder.name))
    return prefixes


def _record_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def trim_botocore_data(
    site: Path, services: frozenset[str] = BOTOCORE_SERVICES
) -> None:
    """Keep only `services` in `site`/botocore/data: their model folders, and their entries
    (by endpoint prefix) in each partition of endpoints.json; the distribution's RECORD is made
    to match. Nothing happens when `site` holds no botocore."""
    data = site / "botocore" / "data"
    if not data.is_dir():
        return
    missing = sorted(name for name in services if not (data / name).is_dir())
    if missing:
        raise SystemExit(f"botocore has no model for {', '.join(missing)}")
    prefixes = set().union(*(_endpoint_prefixes(data / name) for name in services))
    removed = []
    for entry in sorted(data.iterdir()):
        if entry.is_dir() and entry.name not in services:
            removed.append(entry)
            shutil.rmtree(entry)
        elif entry.is_file() and entry.name not in BOTOCORE_DATA_FILES:
            removed.append(entry)
            entry.unlink()
    endpoints_path = data / "endpoints.json"
    endpoints = json.loads(endpoints_path.read_text(encoding="utf-8"))
    for partition in endpoints["partitions"]:
        partition["services"] = {
            key: value
            for key, value in partition["services"].items()
            if key in prefixes
        }
    endpoints_path.write_text(
        json.dumps(endpoints, separators=(",", ":")), encoding="utf-8"
    )
    for record in site.glob("botocore-*.dist-info/RECORD"):
        kept = []
        for line in record.read_text(encoding="utf-8").splitlines():
            path = site / line.rsplit(",", 2)[0]
            if any(path == gone or gone in path.parents for gone in removed):
                continue
            if path == endpoints_path:
                line = f"{line.rsplit(',', 2)[0]},{_record_hash(path)},{path.stat().st_size}"
            kept.append(line)
        record.write_text("\n".join(kept) + "\n", encoding="utf-8")


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
    """Steps 1-6 of the module docstring."""
    target.mkdir(parents=True, exist_ok=True)
    if lock is not None and has_requirements(lock):
        pip_install(lock, target)
        trim_botocore_data(target)
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
