"""A handler's heavy dependency stays out of the API: the `sam build` output with one more job
type, whose handler imports numpy, added the way docs/job-types.md says a team adds one: its
package in the job-types layer (`tools/artifact.py --entry-points`, its entry point added), numpy
pinned in the worker's lock (the `worker` extra) and installed into the worker's artifact alone.
The API's folder and the shared layer are the build's own.

`make bench` cold-starts that build's API next to the build's own (the same interleaved rounds,
`bench.lambda_like`), reads which top-level packages each function's cold start imports, and
measures both builds' sizes: the API's cold start and artifact are unchanged (the type's few
kilobytes of declaration and handler code aside), the worker carries numpy.

    python -m bench.handler_deps    # prepare the build and print where it is
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.motoserver import REPO_ROOT

BUILD = REPO_ROOT / ".aws-sam" / "build"
WORK = REPO_ROOT / ".aws-sam" / "bench-lambda"
LABEL = "with a numpy handler type"
HEAVY_LIBRARY = "numpy"
HEAVY_PIN = "numpy==2.2.6"
"""The heavy dependency: a data library of tens of megabytes, ~100 ms to import."""
PACKAGE = "bench_heavy_types"
ENTRY_POINT = f'bench_heavy = "{PACKAGE}"'

DECLARATION = '''"""A job type whose handler needs numpy: the declaration imports none of it."""
from jobline.registry import JobType
from pydantic import BaseModel, ConfigDict, Field


class StatsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: list[float] = Field(max_length=10_000)


JOB_TYPES = (
    JobType(
        name="bench.stats",
        description="Mean and deviation of a list of numbers (numpy).",
        input_model=StatsInput,
        handler="bench_heavy_types.handler:stats",
    ),
)
'''
HANDLER = '''"""The handler: numpy, imported by the worker only."""
import numpy


def stats(payload, context):
    values = numpy.array(payload.values)
    return {"mean": float(values.mean()), "std": float(values.std())}
'''


def _artifact(python: str, *args: str) -> None:
    """tools/artifact.py under the Lambda runtime's interpreter, as the Makefile runs it."""
    subprocess.run(
        [python, "-I", str(REPO_ROOT / "tools" / "artifact.py"), *args],
        check=True,
        capture_output=True,
    )


def _wheel_lock(python: str, folder: Path) -> Path:
    """A lock pinning HEAVY_PIN with the hash of its Lambda wheel (downloaded once)."""
    wheels = WORK / "heavy-wheels"
    if not any(wheels.glob("*.whl")):
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                "manylinux2014_x86_64",
                "--implementation",
                "cp",
                "--python-version",
                "3.12",
                "--dest",
                str(wheels),
                HEAVY_PIN,
            ],
            check=True,
            capture_output=True,
        )
    [wheel] = wheels.glob("*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lock = folder / "requirements.lock"
    lock.write_text(f"{HEAVY_PIN} --hash=sha256:{digest}\n")
    return lock


def prepare(python: str, build: Path = BUILD) -> Path:
    """The build with the numpy type (rebuilt from `build` each time): its folder."""
    target = WORK / "heavy-build"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for unchanged in ("ApiFunction", "SharedLayer"):
        (target / unchanged).symlink_to(build / unchanged, target_is_directory=True)
    shutil.copy2(build / "template.yaml", target / "template.yaml")
    with tempfile.TemporaryDirectory(prefix="jobline-heavy-") as scratch:
        types = Path(scratch) / "job_types"
        shutil.copytree(
            REPO_ROOT / "job_types",
            types,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
        (types / PACKAGE).mkdir()
        (types / PACKAGE / "__init__.py").write_text(DECLARATION)
        (types / PACKAGE / "handler.py").write_text(HANDLER)
        pyproject = types / "pyproject.toml"
        header = '[project.entry-points."jobline.job_types"]\n'
        text = pyproject.read_text()
        pyproject.write_text(text.replace(header, header + ENTRY_POINT + "\n"))
        _artifact(
            python,
            "--source",
            str(types),
            "--target",
            str(target / "JobTypesLayer" / "python"),
            "--runtime-dir",
            "/opt/python",
            "--entry-points",
            str(pyproject),
        )
        worker = Path(scratch) / "worker"
        shutil.copytree(
            REPO_ROOT / "functions" / "worker",
            worker,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        _artifact(
            python,
            "--source",
            str(worker),
            "--target",
            str(target / "WorkerFunction"),
            "--lock",
            str(_wheel_lock(python, worker)),
        )
    return target


def main() -> None:
    from bench.lambda_like import python312

    python = python312()
    if python is None:
        sys.stdout.write("python3.12 not found\n")
        return
    sys.stdout.write(f"{prepare(python)}\n")


if __name__ == "__main__":
    main()
