"""The lock files, read: exact pins with their markers and hashes, and the dependency closure of
a set of requirements (from the installed distributions' metadata), for the tests and the bench.

Five locks, all written by `make lock` (`tools/lock.py`), one per thing that is installed:

- `shared/requirements.lock`: the shared layer, for Lambda (python3.12, x86_64): the project's
  dependencies without boto3, which the Lambda runtime provides;
- `functions/api/requirements.lock`: the API function, for Lambda: the `api` extra, less what the
  layer already ships;
- `job_types/requirements.lock`: the job-types layer, for Lambda: what the job types'
  declarations need (`job_types/pyproject.toml`'s dependencies), less what the shared layer ships;
- `functions/worker/requirements.lock`: the worker, for Lambda: what only the job types' handlers
  need (`job_types/pyproject.toml`'s `worker` extra), less what both layers ship: the API never
  gets it;
- `requirements-dev.lock`: the development virtualenv (`make`), for any Python the project supports:
  everything, at the same versions as the two above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from tools.artifact import LAMBDA_PYTHON_VERSION

REPO_ROOT = Path(__file__).resolve().parents[1]
LAYER_LOCK = REPO_ROOT / "shared" / "requirements.lock"
API_LOCK = REPO_ROOT / "functions" / "api" / "requirements.lock"
DEV_LOCK = REPO_ROOT / "requirements-dev.lock"
JOB_TYPES_PROJECT = REPO_ROOT / "job_types" / "pyproject.toml"
JOB_TYPES_LOCK = REPO_ROOT / "job_types" / "requirements.lock"
WORKER_LOCK = REPO_ROOT / "functions" / "worker" / "requirements.lock"

RUNTIME_PROVIDED = frozenset({"boto3"})
"""Declared dependencies the Lambda runtime provides: never shipped. (botocore, which the runtime
provides too, is declared on its own: the layer ships it, its data trimmed, and it shadows the
runtime's.)"""

LAMBDA_ENVIRONMENT: dict[str, str] = {
    **{name: str(value) for name, value in default_environment().items()},
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "python_version": LAMBDA_PYTHON_VERSION,
    "python_full_version": f"{LAMBDA_PYTHON_VERSION}.0",
    "implementation_version": f"{LAMBDA_PYTHON_VERSION}.0",
}
"""Marker values on Lambda's python3.12 (x86_64)."""


@dataclass(frozen=True)
class Pin:
    """One entry of a lock file: `name==version ; marker --hash=...`."""

    name: NormalizedName
    version: str
    marker: Marker | None
    hashes: tuple[str, ...]

    def applies(self, environment: Mapping[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate(dict(environment))


def read_lock(path: Path) -> list[Pin]:
    """Every entry of a lock file, continuation lines joined, comments dropped."""
    entries: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        pending += " " + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            entries.append(pending.strip())
            pending = ""
    if pending.strip():
        entries.append(pending.strip())
    pins = []
    for entry in entries:
        words = entry.split()
        hashes = tuple(
            word.split("=", 1)[1] for word in words if word.startswith("--hash=")
        )
        text = " ".join(word for word in words if not word.startswith("--hash="))
        requirement = Requirement(text)
        (specifier,) = requirement.specifier
        if specifier.operator != "==":
            raise ValueError(f"{path.name}: {text!r} is not an exact pin")
        pins.append(
            Pin(
                canonicalize_name(requirement.name),
                specifier.version,
                requirement.marker,
                hashes,
            )
        )
    return pins


def pins_for(path: Path, environment: Mapping[str, str]) -> dict[NormalizedName, Pin]:
    """The lock's entries that apply in `environment`, by name (one each)."""
    found: dict[NormalizedName, Pin] = {}
    for pin in read_lock(path):
        if not pin.applies(environment):
            continue
        if pin.name in found:
            raise ValueError(f"{path.name}: {pin.name} is pinned twice")
        found[pin.name] = pin
    return found


def closure(
    requirements: Iterable[Requirement],
    environment: Mapping[str, str],
    requires: Callable[[str], list[str] | None] = metadata.requires,
) -> set[NormalizedName]:
    """Every distribution `requirements` pull in, directly or not, in `environment` (extras
    followed; each distribution's requirements read from its installed metadata)."""
    pending = list(requirements)
    seen: set[NormalizedName] = set()
    extras_seen: set[tuple[NormalizedName, str]] = set()
    while pending:
        requirement = pending.pop()
        if requirement.marker and not requirement.marker.evaluate(
            {**environment, "extra": ""}
        ):
            continue
        name = canonicalize_name(requirement.name)
        wanted = {""} | {extra for extra in requirement.extras}
        new = {extra for extra in wanted if (name, extra) not in extras_seen}
        if not new:
            continue
        seen.add(name)
        extras_seen.update((name, extra) for extra in new)
        for text in requires(name) or []:
            nested = Requirement(text)
            if nested.marker is None or any(
                nested.marker.evaluate({**environment, "extra": extra}) for extra in new
            ):
                pending.append(Requirement(str(nested).split(";", 1)[0]))
    return seen


def declared(section: list[str]) -> list[Requirement]:
    """pyproject.toml requirement strings, parsed."""
    return [Requirement(text) for text in section]
