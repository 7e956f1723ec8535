"""Job-type packages made in a temporary folder, as a team writes one (docs/job-types.md): a
declaring module (input model, `JOB_TYPES`, the handler as an import path) and a handler module,
optionally importing a stand-in for a heavy library that records its import. Discovery finds them
through `JOBLINE_JOB_TYPE_MODULES` or an installed distribution's entry point (a dist-info folder,
which is what `pip install` leaves)."""

from __future__ import annotations

import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

from jobline.discovery import ENTRY_POINT_GROUP


@dataclass(frozen=True)
class TypePackage:
    """A package written under `root` (put `root` on sys.path to import it)."""

    root: Path
    name: str
    """The package (the declaring module)."""
    type_name: str
    """The job type it declares."""
    heavy: str
    """The module standing in for the handler's heavy dependency."""

    @property
    def handler_module(self) -> str:
        return f"{self.name}.handler"


def write_type_package(
    root: Path,
    *,
    type_name: str | None = None,
    handler_body: str = "return {'words': len(payload.text.split())}",
    asynchronous: bool = False,
) -> TypePackage:
    """A `wordcount`-like package under `root`, named uniquely (modules from earlier tests never
    hide it): its declaration, a handler module that imports a "heavy" module, and that module."""
    suffix = uuid.uuid4().hex[:8]
    name = f"team_types_{suffix}"
    heavy = f"heavy_library_{suffix}"
    type_name = type_name or f"wordcount-{suffix}"
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            f'''
            """A team's job type, declared in two parts."""
            from pydantic import BaseModel, ConfigDict, Field

            from jobline.registry import JobType


            class WordCountInput(BaseModel):
                model_config = ConfigDict(extra="forbid")

                text: str = Field(max_length=10_000)


            JOB_TYPES = (
                JobType(
                    name={type_name!r},
                    description="Counts the words of a text.",
                    input_model=WordCountInput,
                    handler="{name}.handler:count_words",
                ),
            )
            '''
        )
    )
    definition = "async def" if asynchronous else "def"
    (package / "handler.py").write_text(
        textwrap.dedent(
            f"""
            import {heavy}  # what a handler's heavy dependency looks like to the API


            {definition} count_words(payload, context):
                {handler_body}
            """
        )
    )
    (root / f"{heavy}.py").write_text("IMPORTED = True\n")
    return TypePackage(root=root, name=name, type_name=type_name, heavy=heavy)


def write_entry_point(
    root: Path, distribution: str, entries: dict[str, str], version: str = "1.0"
) -> Path:
    """The metadata an installed distribution leaves under `root` (its dist-info): a name, a
    version, and entry points in the `jobline.job_types` group."""
    info = root / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
    )
    lines = "".join(f"{key} = {value}\n" for key, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    return info
