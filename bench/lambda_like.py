"""Cold start closer to Lambda: python3.12 (the template's runtime), the `sam build` artifacts as
deployed (function folder + layer folder on the path, boto3 as the runtime provides it, with
bytecode), nothing written back (Lambda's code folders are read-only) — and the same artifacts
with their bytecode compiled in, which `sam build`'s pip workflow does not ship.

Reported next to the issue's figures (which are measured in the development virtualenv): the
interpreter, and whether a package ships its `.pyc` files, change what a cold start costs.
Prepared folders are kept under .aws-sam/bench-lambda (rebuilt when the build is newer).
"""

from __future__ import annotations

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


def prepare(python: str) -> dict[str, Path]:
    """Folders: the runtime's boto3, each artifact as built and compiled, the naive stack."""
    WORK.mkdir(parents=True, exist_ok=True)
    folders = {"runtime": WORK / "runtime", "naive-deps": WORK / "naive-deps"}
    boto3 = f"boto3=={metadata.version('boto3')}"
    _pip_target(python, folders["runtime"], [boto3], compile_=True)
    _pip_target(python, folders["naive-deps"], NAIVE_REQUIREMENTS, compile_=False)
    stamp = (BUILD / "template.yaml").stat().st_mtime
    sources = {
        "api": BUILD / "ApiFunction",
        "worker": BUILD / "WorkerFunction",
        "layer": BUILD / "SharedLayer" / "python",
        "naive": coldstart.NAIVE_DIR,
    }
    for name, source in sources.items():
        for suffix, compiled in (("", False), ("-pyc", True)):
            target = WORK / f"{name}{suffix}"
            marker = target / ".bench-stamp"
            if not (marker.exists() and float(marker.read_text()) >= stamp):
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target)
                if compiled:
                    _compile(python, target)
                marker.write_text(str(stamp))
            folders[f"{name}{suffix}"] = target
    naive_pyc = WORK / "naive-deps-pyc"
    if not (naive_pyc / ".done").exists():
        shutil.rmtree(naive_pyc, ignore_errors=True)
        shutil.copytree(folders["naive-deps"], naive_pyc)
        _compile(python, naive_pyc)
    folders["naive-deps-pyc"] = naive_pyc
    return folders


@dataclass
class LambdaLike:
    python_pass: float
    medians: dict[str, float] = field(default_factory=dict)

    def ratio(self, name: str) -> float:
        return self.medians[name] / self.python_pass


def measure(server: MotoServer, runs: int = 5) -> LambdaLike | None:
    """Medians of interleaved cold starts under python3.12; None without python3.12."""
    python = python312()
    if python is None:
        return None
    try:
        folders = prepare(python)
    except subprocess.CalledProcessError as exc:
        # No package registry, or no pip for python3.12: report it and go on.
        sys.stderr.write(f"[bench] Lambda-like cold starts skipped: {exc}\n")
        return None
    base = {variant.name: variant for variant in coldstart.variants()}
    cases = {}
    for suffix, label in (("", "as built"), ("-pyc", "with .pyc")):
        runtime = folders["runtime"]
        cases[f"api {label}"] = (
            base["api"],
            [folders[f"api{suffix}"], folders[f"layer{suffix}"], runtime],
        )
        cases[f"naive api {label}"] = (
            base["naive api"],
            [folders[f"naive{suffix}"], folders[f"naive-deps{suffix}"], runtime],
        )
        cases[f"worker {label}"] = (
            base["worker"],
            [folders[f"worker{suffix}"], folders[f"layer{suffix}"], runtime],
        )
    timings: dict[str, list[float]] = {name: [] for name in cases}
    passes = []
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as workdir:
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([python, "-c", "pass"], check=True)
            passes.append(time.perf_counter() - started)
            for name, (variant, paths) in cases.items():
                timings[name].append(
                    _cold_start(server, python, variant, paths, workdir)
                )
    return LambdaLike(
        python_pass=statistics.median(passes),
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
