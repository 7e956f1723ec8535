"""Size: each `sam build` artifact unzipped and zipped (as `sam package` uploads it), each function
with its layers, and what is in them.

Runs `make build` (sam build, with its cache) and reads `.aws-sam/build/template.yaml`. What an
artifact ships must be exactly what its lock files pin (the function's, then its layers'), at the
pinned versions, each distribution once; every module must ship its bytecode (unchecked-hash, for
the runtime's interpreter); the worker must ship no web framework.

    python -m bench.size [BUILD_DIR ...]    # figures of existing builds (e.g. before and after)
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobline_local.template import load_template
from packaging.utils import canonicalize_name

from bench.motoserver import REPO_ROOT
from tools.artifact import LAMBDA_PYTHON_VERSION, missing_bytecode
from tools.lockfile import JOB_TYPES_PROJECT, LAMBDA_ENVIRONMENT, pins_for

BUILD = REPO_ROOT / ".aws-sam" / "build"
WEB_STACK = {"fastapi", "starlette", "mangum", "aiohttp", "aioboto3", "aiobotocore"}
LAMBDA_CACHE_TAG = "cpython-" + LAMBDA_PYTHON_VERSION.replace(".", "")


@dataclass
class Artifact:
    """One function as deployed: its own folder and its layers' folders."""

    function: str
    folders: list[Path]
    bytes: int = 0
    zipped_bytes: int = 0
    distributions: dict[str, str] = field(default_factory=dict)
    """Canonical name -> version of every distribution shipped (function and layers)."""
    unexpected: list[str] = field(default_factory=list)
    """Shipped but not pinned by the artifact's locks, or at another version."""
    missing: list[str] = field(default_factory=list)
    """Pinned by the artifact's locks but not shipped."""
    duplicated: list[str] = field(default_factory=list)
    """Shipped twice (in the function and a layer, or in two layers)."""
    duplicated_bytes: int = 0
    without_bytecode: list[str] = field(default_factory=list)

    @property
    def ships_web_stack(self) -> bool:
        return bool(WEB_STACK & set(self.distributions))


def folder_bytes(path: Path) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def zipped_bytes(path: Path) -> int:
    """The folder zipped as `sam package` zips it (deflate, paths relative to the folder)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, _, names in os.walk(path):
            for name in sorted(names):
                full = Path(root) / name
                archive.writestr(
                    zipfile.ZipInfo(str(full.relative_to(path))),
                    full.read_bytes(),
                    compress_type=zipfile.ZIP_DEFLATED,
                )
    return buffer.getbuffer().nbytes


def shipped_distributions(folder: Path) -> dict[str, tuple[str, Path]]:
    """Canonical name -> (version, dist-info folder) of every distribution in `folder`."""
    found: dict[str, tuple[str, Path]] = {}
    for info in folder.rglob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        found[canonicalize_name(name)] = (version, info)
    return found


def folder_sizes(build: Path = BUILD) -> dict[str, tuple[int, int]]:
    """Each build folder (function or layer): (unzipped bytes, zipped bytes)."""
    return {
        folder.name: (folder_bytes(folder), zipped_bytes(folder))
        for folder in sorted(build.iterdir())
        if folder.is_dir()
    }


def build() -> None:
    completed = subprocess.run(
        ["make", "--no-print-directory", "build"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"make build failed:\n{completed.stdout}\n{completed.stderr}"
        )


def own_distributions() -> dict[str, str]:
    """What the build ships of its own besides the locks: the job types' entry points, as the
    distribution `job_types/pyproject.toml` names (tools/artifact.py --entry-points)."""
    with JOB_TYPES_PROJECT.open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return {canonicalize_name(project["name"]): project["version"]}


def _lock_of(source: dict[str, Any], logical_id: str) -> Path:
    props = source["Resources"][logical_id]["Properties"]
    code: str = props.get("CodeUri", props.get("ContentUri"))
    return REPO_ROOT / code / "requirements.lock"


def measure(run_build: bool = True, build_dir: Path = BUILD) -> list[Artifact]:
    if run_build:
        build()
    template = load_template(build_dir / "template.yaml")
    source = load_template()
    resources: dict[str, Any] = template["Resources"]
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    artifacts = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        layers = [
            layer["Ref"]
            for layer in props.get("Layers", global_layers)
            if isinstance(layer, dict) and "Ref" in layer
        ]
        folders = [build_dir / props["CodeUri"]] + [
            build_dir / resources[layer]["Properties"]["ContentUri"] for layer in layers
        ]
        artifact = Artifact(function=name, folders=folders)
        artifact.bytes = sum(folder_bytes(folder) for folder in folders)
        artifact.zipped_bytes = sum(zipped_bytes(folder) for folder in folders)
        pinned: dict[str, str] = own_distributions()
        for logical_id in [name, *layers]:
            lock = _lock_of(source, logical_id)
            if lock.exists():
                for pin in pins_for(lock, LAMBDA_ENVIRONMENT).values():
                    pinned[pin.name] = pin.version
        for folder in folders:
            for dist, (version, info) in shipped_distributions(folder).items():
                if dist in artifact.distributions:
                    artifact.duplicated.append(dist)
                    artifact.duplicated_bytes += sum(
                        folder_bytes(info.parent / top)
                        for top in _top_levels(info)
                        if (info.parent / top).is_dir()
                    )
                artifact.distributions.setdefault(dist, version)
            artifact.without_bytecode += [
                f"{folder.name}/{line}"
                for line in missing_bytecode(folder, LAMBDA_CACHE_TAG)
            ]
        artifact.unexpected = sorted(
            f"{dist}=={version}"
            for dist, version in artifact.distributions.items()
            if pinned.get(dist) != version
        )
        artifact.missing = sorted(set(pinned) - set(artifact.distributions))
        artifacts.append(artifact)
    return artifacts


def _top_levels(info: Path) -> list[str]:
    top_level = info / "top_level.txt"
    if top_level.exists():
        return [
            line.strip() for line in top_level.read_text().splitlines() if line.strip()
        ]
    record = info / "RECORD"
    names = set()
    if record.exists():
        for line in record.read_text().splitlines():
            first = line.split(",", 1)[0].split("/", 1)[0]
            if first and not first.endswith(".dist-info"):
                names.add(first)
    return sorted(names)


def human(size_bytes: int) -> str:
    """MB (10**6 bytes) from 1 MB up, kB below."""
    if size_bytes >= 1_000_000:
        return f"{size_bytes / 1_000_000:.2f} MB"
    return f"{size_bytes / 1000:.1f} kB"


def main() -> None:
    """Per build folder: unzipped and zipped sizes; per function: with its layer, and checks."""
    builds = [Path(arg) for arg in sys.argv[1:]] or [BUILD]
    for build_dir in builds:
        sys.stdout.write(f"{build_dir}\n")
        for folder, (raw, zipped) in folder_sizes(build_dir).items():
            sys.stdout.write(
                f"  {folder:<28} {human(raw):>9} unzipped {human(zipped):>9} zipped\n"
            )
        for artifact in measure(run_build=False, build_dir=build_dir):
            sys.stdout.write(
                f"  {artifact.function + ' + layer':<28} {human(artifact.bytes):>9} unzipped"
                f" {human(artifact.zipped_bytes):>9} zipped;"
                f" twice: {human(artifact.duplicated_bytes)} {artifact.duplicated};"
                f" .py without .pyc: {len(artifact.without_bytecode)};"
                f" unpinned: {artifact.unexpected}; pinned, missing: {artifact.missing}\n"
            )


if __name__ == "__main__":
    main()
