"""Cold start closer to Lambda: python3.12 (the template's runtime), the `sam build` artifacts as
deployed (function folder + layer folder on the path, boto3 as the runtime provides it, with
bytecode), nothing written back (`PYTHONDONTWRITEBYTECODE=1`: Lambda's code folders are
read-only). The build ships unchecked-hash bytecode for every module (tools/artifact.py); the same
artifacts without it show what that saves, and any other build folder (e.g. one kept from before a
change) can be measured in the same interleaved rounds:

    python -m bench.lambda_like [--runs N] [LABEL=BUILD_DIR ...]

Reported next to the issue's figures (which are measured in the development virtualenv): the
interpreter, and whether a package ships its `.pyc` files, change what a cold start costs.
Prepared folders are kept under .aws-sam/bench-lambda (rebuilt when the build is newer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench import coldstart
from bench.motoserver import REPO_ROOT, MotoServer

BUILD = REPO_ROOT / ".aws-sam" / "build"
WORK = REPO_ROOT / ".aws-sam" / "bench-lambda"
NAIVE_REQUIREMENTS = ["fastapi", "mangum", "aioboto3", "structlog", "pydantic-settings"]
AS_BUILT = "as built"
WITHOUT_PYC = "as built, .pyc removed"


def python312() -> str | None:
    """The interpreter of python3.12, as `make build` finds it (PATH first, then pyenv)."""
    candidates = [shutil.which("python3.12")]
    try:
        prefix = subprocess.run(
            ["pyenv", "prefix", "3.12"], capture_output=True, text=True, check=True
        ).stdout.strip()
        candidates.append(str(Path(prefix) / "bin" / "python3.12"))
    except (OSError, subprocess.CalledProcessError):
        pass
    for candidate in candidates:
        if candidate is None:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip():
            return probe.stdout.strip()
    return None


def _compile(python: str, folder: Path) -> None:
    command = [
        python,
        "-m",
        "compileall",
        "-q",
        "--invalidation-mode",
        "unchecked-hash",
    ]
    subprocess.run([*command, str(folder)], check=True, stdout=subprocess.DEVNULL)


def _pip_target(
    python: str, target: Path, requirements: list[str], compile_: bool
) -> None:
    if (target / ".done").exists():
        return
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ([] if compile_ else ["--no-compile"])
        + ["--target", str(target), *requirements],
        check=True,
        capture_output=True,
    )
    (target / ".done").touch()


def _without_bytecode(source: Path, target: Path) -> Path:
    """A copy of a build folder without its `__pycache__` folders (kept while up to date)."""
    stamp = str(source.stat().st_mtime)
    marker = target / ".bench-stamp"
    if not (marker.exists() and marker.read_text() == stamp):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        marker.write_text(stamp)
    return target


def prepare(python: str) -> dict[str, Path]:
    """Folders: the runtime's boto3 and the naive stack, as pip installs it and compiled."""
    WORK.mkdir(parents=True, exist_ok=True)
    folders = {"runtime": WORK / "runtime", "naive-deps": WORK / "naive-deps"}
    boto3 = f"boto3=={metadata.version('boto3')}"
    _pip_target(python, folders["runtime"], [boto3], compile_=True)
    _pip_target(python, folders["naive-deps"], NAIVE_REQUIREMENTS, compile_=False)
    naive_pyc = WORK / "naive-deps-pyc"
    if not (naive_pyc / ".done").exists():
        shutil.rmtree(naive_pyc, ignore_errors=True)
        shutil.copytree(folders["naive-deps"], naive_pyc)
        _compile(python, naive_pyc)
    folders["naive-deps-pyc"] = naive_pyc
    naive_code = WORK / "naive-pyc"
    shutil.rmtree(naive_code, ignore_errors=True)
    shutil.copytree(coldstart.NAIVE_DIR, naive_code)
    _compile(python, naive_code)
    folders["naive-pyc"] = naive_code
    return folders


def build_folders(build: Path) -> dict[str, Path]:
    """The API, worker and layer folders of one `sam build` output."""
    return {
        "api": build / "ApiFunction",
        "worker": build / "WorkerFunction",
        "layer": build / "SharedLayer" / "python",
    }


@dataclass
class LambdaLike:
    python_pass: float
    builds: list[str]
    medians: dict[str, float] = field(default_factory=dict)

    def ratio(self, name: str) -> float:
        return self.medians[name] / self.python_pass


def measure(
    server: MotoServer,
    runs: int = 5,
    builds: dict[str, Path] | None = None,
    strip_bytecode: bool = True,
) -> LambdaLike | None:
    """Medians of interleaved cold starts under python3.12 of the API and the worker of each
    build (by default the current one, as built and without its bytecode) and of the naive API
    (its packages as pip installs them: with bytecode, and without as `sam build`'s pip workflow
    ships them); None without python3.12."""
    python = python312()
    if python is None:
        return None
    try:
        folders = prepare(python)
    except subprocess.CalledProcessError as exc:
        # No package registry, or no pip for python3.12: report it and go on.
        sys.stderr.write(f"[bench] Lambda-like cold starts skipped: {exc}\n")
        return None
    builds = dict(builds or {AS_BUILT: BUILD})
    layouts = {label: build_folders(build) for label, build in builds.items()}
    if strip_bytecode and AS_BUILT in layouts:
        layouts[WITHOUT_PYC] = {
            name: _without_bytecode(path, WORK / f"{name}-without-pyc")
            for name, path in layouts[AS_BUILT].items()
        }
    base = {variant.name: variant for variant in coldstart.variants()}
    runtime = folders["runtime"]
    cases: dict[str, tuple[coldstart.Variant, list[Path]]] = {
        "naive api": (
            base["naive api"],
            [folders["naive-pyc"], folders["naive-deps-pyc"], runtime],
        ),
        "naive api without .pyc": (
            base["naive api"],
            [coldstart.NAIVE_DIR, folders["naive-deps"], runtime],
        ),
    }
    for label, layout in layouts.items():
        cases[f"api {label}"] = (
            base["api"],
            [layout["api"], layout["layer"], runtime],
        )
        cases[f"worker {label}"] = (
            base["worker"],
            [layout["worker"], layout["layer"], runtime],
        )
    timings: dict[str, list[float]] = {name: [] for name in cases}
    passes = []
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as workdir:
        for round_no in range(runs):
            started = time.perf_counter()
            subprocess.run([python, "-c", "pass"], check=True)
            passes.append(time.perf_counter() - started)
            names = list(cases)
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                variant, paths = cases[name]
                timings[name].append(
                    _cold_start(server, python, variant, paths, workdir)
                )
    return LambdaLike(
        python_pass=statistics.median(passes),
        builds=list(layouts),
        medians={name: statistics.median(values) for name, values in timings.items()},
    )


def _cold_start(
    server: MotoServer,
    python: str,
    variant: coldstart.Variant,
    paths: list[Path],
    workdir: str,
) -> float:
    event = variant.make_event(server)
    event_path = Path(workdir) / "event.json"
    event_path.write_text(json.dumps(event))
    env = server.function_env(variant.function, paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            python,
            str(coldstart.RUNTIME),
            variant.handler,
            str(event_path),
            str(write_fd),
        ],
        env=env,
        cwd=workdir,
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    try:
        line = coldstart.Lines(read_fd).next()
        elapsed = time.perf_counter() - started
    finally:
        os.close(read_fd)
    _, stderr = process.communicate(timeout=60)
    if not line:
        raise RuntimeError(
            f"{variant.name} under python3.12 failed:\n{stderr.decode()[-3000:]}"
        )
    variant.check(server, event, json.loads(line))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lambda_like")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "builds",
        nargs="*",
        metavar="LABEL=BUILD_DIR",
        help=f"sam build outputs to compare (default: {AS_BUILT}={BUILD})",
    )
    args = parser.parse_args()
    builds = {
        label: Path(path).resolve()
        for label, _, path in (item.partition("=") for item in args.builds)
    }
    with MotoServer() as server:
        result = measure(server, runs=args.runs, builds=builds or None)
    if result is None:
        sys.stdout.write("python3.12 not found\n")
        return
    sys.stdout.write(f"python3.12 -c pass: {result.python_pass * 1000:.0f} ms\n")
    naive = result.medians["naive api"]
    for name, median in result.medians.items():
        versus = f" = {median / naive:.2f}x naive" if name.startswith("api") else ""
        sys.stdout.write(
            f"{name}: {median * 1000:.0f} ms = {result.ratio(name):.1f}x pass{versus}\n"
        )


if __name__ == "__main__":
    main()
