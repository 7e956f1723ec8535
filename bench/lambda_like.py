"""Cold starts as deployed: the `sam build` artifacts started the way Lambda starts them, held to
the targets of `make bench`'s first table.

Every start is a fresh `python3.12 -I -B` (the template's runtime; `-I`: no PYTHON* variables, no
user site, no script folder on the path; `-B`: nothing written, Lambda's code folders are
read-only) running `bench/lambda_runtime.py`, with the function's folder, the layer's `python/`
folder and boto3 as the runtime provides it (installed with its bytecode, as in /var/runtime) on
the path in Lambda's order, the function's environment from the template (with
AWS_LAMBDA_INITIALIZATION_TYPE: the handler builds its service during init) and the bench's moto
server on loopback as AWS. The time is process start to the first response (init + first invoke).

Measured in the same interleaved rounds (the order rotates each round, a first round is dropped,
figures are medians):
- `python3.12 -I -c pass`: the unit of the ratios;
- the API and the worker of each build (by default the current one, `.aws-sam/build`), and the
  peak RSS of each (in the child at its first response: `lambda_runtime.peak_rss_kb`);
- the naive API (`bench/naive/naive_api.py`) deployed as a user's `sam build` would deploy it: one
  folder with its requirements installed by pip and no bytecode (SAM's pip workflow compiles
  nothing, and Lambda cannot write any);
- floors: the same interpreter only importing the libraries each function cannot do without
  (botocore, FastAPI, Mangum, pydantic-settings, structlog for the API; the same without FastAPI
  and Mangum for the worker) with the garbage collector off as the handlers' init has it, start
  to `os._exit` (no teardown, as the runtime ends): what the standards alone cost, before any client,
  model, route or request.
After the rounds, one `-X importtime` start per function says where its imports go.

    python -m bench.lambda_like [--runs N] [--strip-bytecode] [LABEL=BUILD_DIR ...]

Prepared folders are kept under .aws-sam/bench-lambda (the runtime's boto3, the naive build).
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
NAIVE = "naive api as deployed"
PASS = "python3.12 -I -c pass"
ISOLATED = ["-I", "-B"]

_NO_GC = "import gc\ngc.disable()\n"  # as the handlers run their init
FLOORS = {
    "api floor": _NO_GC
    + "import botocore.session, fastapi, mangum, pydantic_settings, structlog",
    "worker floor": _NO_GC + "import botocore.session, pydantic_settings, structlog",
}
"""What each function cannot do without: importing its standard libraries, nothing else."""


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
    """Folders: the runtime's boto3 (with bytecode, as /var/runtime has it) and the naive API as a
    user's `sam build` deploys it (its requirements and its code in one folder, no bytecode)."""
    WORK.mkdir(parents=True, exist_ok=True)
    runtime = WORK / "runtime"
    _pip_target(python, runtime, [f"boto3=={metadata.version('boto3')}"], True)
    naive = WORK / "naive-build"
    _pip_target(python, naive, NAIVE_REQUIREMENTS, compile_=False)
    for source in coldstart.NAIVE_DIR.glob("*.py"):
        shutil.copy2(source, naive / source.name)
    return {"runtime": runtime, "naive": naive}


def build_folders(build: Path) -> dict[str, Path]:
    """The API, worker and layers' folders of one `sam build` output (the layers' `python/`
    folders, which Lambda merges into /opt/python)."""
    return {
        "api": build / "ApiFunction",
        "worker": build / "WorkerFunction",
        "layer": build / "SharedLayer" / "python",
        "types": build / "JobTypesLayer" / "python",
    }


@dataclass
class LambdaLike:
    python_pass: float
    builds: list[str]
    medians: dict[str, float] = field(default_factory=dict)
    """Seconds to the first response (to exit, for a floor), per case."""
    rss_kb: dict[str, int] = field(default_factory=dict)
    """Peak resident set at the first response, per function case."""
    importtime: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Per function as built: (top-level package, microseconds of its own modules), largest first."""

    def ratio(self, name: str) -> float:
        return self.medians[name] / self.python_pass


@dataclass(frozen=True)
class _Case:
    variant: coldstart.Variant | None
    paths: list[Path]
    code: str = ""
    """For a floor: what `python -c` runs (the paths are put first on sys.path)."""


def measure(
    server: MotoServer,
    runs: int = 9,
    builds: dict[str, Path] | None = None,
    strip_bytecode: bool = False,
    importtime: bool = True,
) -> LambdaLike | None:
    """Interleaved cold starts under python3.12 (see the module docstring); None without
    python3.12 or without the packages its folders need."""
    python = python312()
    if python is None:
        return None
    try:
        folders = prepare(python)
    except subprocess.CalledProcessError as exc:
        # No package registry, or no pip for python3.12: report it and go on.
        sys.stderr.write(f"[bench] Lambda-like cold starts skipped: {exc}\n")
        return None
    layouts = {
        label: build_folders(build)
        for label, build in (builds or {AS_BUILT: BUILD}).items()
    }
    if strip_bytecode and AS_BUILT in layouts:
        layouts[WITHOUT_PYC] = {
            name: _without_bytecode(path, WORK / f"{name}-without-pyc")
            for name, path in layouts[AS_BUILT].items()
        }
    base = {variant.name: variant for variant in coldstart.variants()}
    runtime = folders["runtime"]
    cases: dict[str, _Case] = {}
    for label, layout in layouts.items():
        for name in ("api", "worker"):
            cases[f"{name} {label}"] = _Case(
                base[name], [layout[name], layout["layer"], layout["types"], runtime]
            )
    cases[NAIVE] = _Case(base["naive api"], [folders["naive"], runtime])
    first = next(iter(layouts.values()))
    for name, code in FLOORS.items():
        function = first["api" if name.startswith("api") else "worker"]
        cases[name] = _Case(None, [function, first["layer"], runtime], code)
    timings: dict[str, list[float]] = {name: [] for name in cases}
    rss: dict[str, list[int]] = {name: [] for name in cases if cases[name].variant}
    passes = []
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as workdir:
        for round_no in range(runs + 1):
            started = time.perf_counter()
            subprocess.run([python, "-I", "-c", "pass"], check=True)
            elapsed = time.perf_counter() - started
            names = list(cases)
            shift = round_no % len(names)
            results = {
                name: _start(server, python, cases[name], workdir)
                for name in names[shift:] + names[:shift]
            }
            if round_no == 0:
                continue  # page cache, moto's first requests
            passes.append(elapsed)
            for name, (seconds, peak_kb) in results.items():
                timings[name].append(seconds)
                if name in rss:
                    rss[name].append(peak_kb)
        imports = {}
        if importtime:
            for name in ("api", "worker"):
                case = cases[f"{name} {next(iter(layouts))}"]
                imports[name] = _importtime(server, python, case, workdir)
    return LambdaLike(
        python_pass=statistics.median(passes),
        builds=list(layouts),
        medians={name: statistics.median(values) for name, values in timings.items()},
        rss_kb={name: int(statistics.median(values)) for name, values in rss.items()},
        importtime=imports,
    )


def _start(
    server: MotoServer,
    python: str,
    case: _Case,
    workdir: str,
    extra_args: tuple[str, ...] = (),
) -> tuple[float, int]:
    """One cold start: (seconds to the first response, peak RSS in kB); a floor: (seconds to
    exit, 0)."""
    if case.variant is None:
        env = server.function_env("ApiFunction", case.paths)
        prelude = f"import sys\nsys.path[0:0] = {[str(p) for p in case.paths]!r}\n"
        started = time.perf_counter()
        subprocess.run(
            # os._exit, as the runtime ends: no interpreter teardown timed
            [
                python,
                *ISOLATED,
                "-c",
                prelude + case.code + "\nimport os\nos._exit(0)\n",
            ],
            env=env,
            cwd=workdir,
            check=True,
        )
        return time.perf_counter() - started, 0
    seconds, peak_kb, _ = _invoke(server, python, case, workdir, extra_args)
    return seconds, peak_kb


def _invoke(
    server: MotoServer,
    python: str,
    case: _Case,
    workdir: str,
    extra_args: tuple[str, ...] = (),
) -> tuple[float, int, str]:
    variant = case.variant
    assert variant is not None
    event = variant.make_event(server)
    event_path = Path(workdir) / "event.json"
    event_path.write_text(json.dumps(event))
    env = server.function_env(variant.function, [])
    del env["PYTHONPATH"]  # -I ignores it: the runtime puts the folders on the path
    env["BENCH_SYS_PATH"] = os.pathsep.join(str(path) for path in case.paths)
    env["BENCH_REPORT_RSS"] = "1"
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                python,
                *ISOLATED,
                *extra_args,
                str(coldstart.RUNTIME),
                variant.handler,
                str(event_path),
                str(write_fd),
            ],
            env=env,
            cwd=workdir,
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        os.close(write_fd)
        try:
            lines = coldstart.Lines(read_fd)
            line = lines.next()
            elapsed = time.perf_counter() - started
            stats = lines.next() if line else b""
        finally:
            os.close(read_fd)
        process.wait(timeout=60)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if not line:
        raise RuntimeError(f"{variant.name} under python3.12 failed:\n{stderr[-3000:]}")
    variant.check(server, event, json.loads(line))
    peak_kb = int(json.loads(stats)["maxrss_kb"]) if stats else 0
    return elapsed, peak_kb, stderr


def imported_packages(
    server: MotoServer, python: str, build: Path, function: str
) -> set[str]:
    """The top-level packages one cold start of `function` ("api" or "worker") of the `sam
    build` output `build` imports, init and first event (its `-X importtime`)."""
    folders = build_folders(build)
    case = _Case(
        {variant.name: variant for variant in coldstart.variants()}[function],
        [
            folders[function],
            folders["layer"],
            folders["types"],
            prepare(python)["runtime"],
        ],
    )
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as workdir:
        return {package for package, _ in _importtime(server, python, case, workdir)}


def _importtime(
    server: MotoServer, python: str, case: _Case, workdir: str
) -> list[tuple[str, int]]:
    _, _, stderr = _invoke(server, python, case, workdir, ("-X", "importtime"))
    return coldstart.top_level_imports(stderr)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lambda_like")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--strip-bytecode",
        action="store_true",
        help="also start each build with its .pyc files removed",
    )
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
        result = measure(
            server,
            runs=args.runs,
            builds=builds or None,
            strip_bytecode=args.strip_bytecode,
        )
    if result is None:
        sys.stdout.write("python3.12 not found\n")
        return
    sys.stdout.write(f"{PASS}: {result.python_pass * 1000:.1f} ms\n")
    naive = result.medians[NAIVE]
    for name, median in result.medians.items():
        versus = f" = {median / naive:.2f}x naive" if name.startswith("api") else ""
        peak = result.rss_kb.get(name)
        memory = f", peak RSS {peak / 1024:.0f} MiB" if peak else ""
        sys.stdout.write(
            f"{name}: {median * 1000:.0f} ms = {result.ratio(name):.1f}x pass{versus}"
            f"{memory}\n"
        )
    for name, packages in result.importtime.items():
        top = ", ".join(f"{package} {us / 1000:.0f}" for package, us in packages[:10])
        sys.stdout.write(f"-X importtime {name} (ms, own modules): {top}\n")


if __name__ == "__main__":
    main()
