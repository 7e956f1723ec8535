"""Where a deployment's job types come from (`bootstrap.default_registry` registers them):

- every entry point of the group `jobline.job_types` of the installed distributions: a package
  declares one in its pyproject.toml (`[project.entry-points."jobline.job_types"]`,
  `my_types = "my_package"`), loading to a `JobType`, a sequence of them, or a module whose
  `JOB_TYPES` is one (this repository's `job_types/pyproject.toml` declares its folder's packages,
  the examples among them);
- each module the setting `JOBLINE_JOB_TYPE_MODULES` names (comma-separated), with `JOB_TYPES`.

A declaration found both ways counts once; two declarations of one name are refused, naming both
sources. Loading imports the declaring modules only: a type whose handler is an import path
(`"package.module:function"`) keeps its handler's module, and what that imports, out of every
function that does not run it (the API, ingest). Nothing here changes when a team adds a type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import import_module, metadata
from types import ModuleType
from typing import Any

from jobline.errors import InvalidJobTypeDeclaration
from jobline.registry import JobType

ENTRY_POINT_GROUP = "jobline.job_types"
JOB_TYPES_ATTRIBUTE = "JOB_TYPES"


@dataclass(frozen=True)
class Found:
    """A job type and where it was declared (for errors and logs)."""

    job_type: JobType[Any]
    source: str


def discover(modules: Sequence[str] = (), *, entry_points: bool = True) -> list[Found]:
    """The job types of the installed `jobline.job_types` entry points (unless `entry_points` is
    False), then of each of `modules`, in that order, each declaration once."""
    found: list[Found] = []
    if entry_points:
        for entry_point in sorted(
            metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda point: (point.dist.name if point.dist else "", point.name),
        ):
            source = f"entry point {entry_point.name} = {entry_point.value}"
            found += _found(_load_entry_point(entry_point, source), source)
    for name in modules:
        source = f"module {name} (JOBLINE_JOB_TYPE_MODULES)"
        found += _found(_declarations(_import(name, source), source), source)
    return _once(found)


def _load_entry_point(entry_point: metadata.EntryPoint, source: str) -> Any:
    try:
        loaded = entry_point.load()
    except (
        Exception
    ) as exc:  # re-raised below, naming the entry point (the cause is chained)
        raise InvalidJobTypeDeclaration(
            None, f"{source}: cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    return _declarations(loaded, source)


def _import(name: str, source: str) -> ModuleType:
    try:
        return import_module(name)
    except (
        Exception
    ) as exc:  # re-raised below, naming the module (the cause is chained)
        raise InvalidJobTypeDeclaration(
            None, f"{source}: cannot be imported: {type(exc).__name__}: {exc}"
        ) from exc


def _declarations(loaded: Any, source: str) -> list[JobType[Any]]:
    """What an entry point or module declares: a JobType, a sequence of them, or a module whose
    JOB_TYPES is one."""
    if isinstance(loaded, ModuleType):
        if not hasattr(loaded, JOB_TYPES_ATTRIBUTE):
            raise InvalidJobTypeDeclaration(
                None, f"{source}: module {loaded.__name__} has no {JOB_TYPES_ATTRIBUTE}"
            )
        loaded = getattr(loaded, JOB_TYPES_ATTRIBUTE)
    if isinstance(loaded, JobType):
        return [loaded]
    if isinstance(loaded, Iterable) and not isinstance(loaded, str | bytes | dict):
        items = list(loaded)
        strays = [item for item in items if not isinstance(item, JobType)]
        if not strays:
            return items
        loaded = strays[0]
    raise InvalidJobTypeDeclaration(
        None,
        f"{source}: declares {type(loaded).__name__} {loaded!r:.80}, not a JobType "
        "(or a sequence of them)",
    )


def _found(job_types: list[JobType[Any]], source: str) -> list[Found]:
    return [Found(job_type, source) for job_type in job_types]


def _once(found: list[Found]) -> list[Found]:
    """Each declaration once (a module named by an entry point and by the setting); a name
    declared twice by different declarations is refused."""
    by_name: dict[str, Found] = {}
    kept: list[Found] = []
    for item in found:
        earlier = by_name.get(item.job_type.name)
        if earlier is None:
            by_name[item.job_type.name] = item
            kept.append(item)
        elif earlier.job_type is not item.job_type:
            raise InvalidJobTypeDeclaration(
                item.job_type.name,
                f"is declared twice: by {earlier.source} and by {item.source}",
            )
    return kept
