"""Size: the unzipped `sam build` artifact of each function with its layers, and what is in it.

Runs `make build` (sam build, with its cache) and reads `.aws-sam/build/template.yaml`. A shipped
distribution must be required, directly or not, by the requirements files `sam build` installed
from (boto3 is the runtime's): anything else is development or test tooling. The worker must ship
no web framework.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from jobline_local.template import load_template
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.motoserver import REPO_ROOT

BUILD = REPO_ROOT / ".aws-sam" / "build"
WEB_STACK = {"fastapi", "starlette", "mangum", "aiohttp", "aioboto3", "aiobotocore"}
LAMBDA_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.0", "extra": ""}


@dataclass
class Artifact:
    """One function as deployed: its own folder and its layers' folders."""

    function: str
    folders: list[Path]
    bytes: int = 0
    distributions: dict[str, Path] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    duplicated_bytes: int = 0

    @property
    def ships_web_stack(self) -> bool:
        return bool(WEB_STACK & set(self.distributions))


def folder_bytes(path: Path) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def shipped_distributions(folder: Path) -> dict[str, Path]:
    """Canonical name -> dist-info folder of every distribution installed in `folder`."""
    found: dict[str, Path] = {}
    for info in folder.rglob("*.dist-info"):
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        found[canonicalize_name(name)] = info
    return found


def requirement_closure(files: list[Path]) -> set[str]:
    """Every distribution the requirements files pull in (as installed here, on Lambda's Python)."""
    environment: dict[str, str] = {
        **{key: str(value) for key, value in default_environment().items()},
        **LAMBDA_PYTHON,
    }
    pending = [
        Requirement(line.split(" #", 1)[0].strip())
        for path in files
        if path.exists()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            nested = Requirement(text)
            if not nested.marker or nested.marker.evaluate(environment):
                pending.append(nested)
    return seen


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


def measure(run_build: bool = True) -> list[Artifact]:
    if run_build:
        build()
    template = load_template(BUILD / "template.yaml")
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
        folders = [BUILD / props["CodeUri"]] + [
            BUILD / resources[layer]["Properties"]["ContentUri"] for layer in layers
        ]
        artifact = Artifact(function=name, folders=folders)
        artifact.bytes = sum(folder_bytes(folder) for folder in folders)
        requirement_files = [
            REPO_ROOT
            / source["Resources"][name]["Properties"]["CodeUri"]
            / "requirements.txt"
        ] + [
            REPO_ROOT
            / source["Resources"][layer]["Properties"]["ContentUri"]
            / "requirements.txt"
            for layer in layers
        ]
        allowed = requirement_closure(requirement_files)
        seen: dict[str, Path] = {}
        for folder in folders:
            for dist, info in shipped_distributions(folder).items():
                if dist in seen:
                    artifact.duplicated_bytes += sum(
                        folder_bytes(info.parent / top)
                        for top in _top_levels(info)
                        if (info.parent / top).is_dir()
                    )
                seen.setdefault(dist, info)
        artifact.distributions = seen
        artifact.unexpected = sorted(set(seen) - allowed)
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
