"""Cold starts as deployed: the `sam build` artifacts started the way Lambda starts them, held to
the targets of `make bench`'s first table.

Every start is a fresh `python3.12 -I -B` (the template's runtime; `-I`: no PYTHON* variables, no
user site, no script folder on the path; `-B`: nothing written, Lambda's code folders are
read-only) running `bench/lambda_runtime.py`, with the function's folder, the layer's `python/`
folder and boto3 as the runtime provides it (installed with its bytecode, as in /var/runtime) on
the path in Lambda's order, the function's environment from the template (with
AWS_LAMBDA_INITIALIZATION_TYPE: the handler builds its service during init) and the bench's moto
server on loopback as AWS. The time is process start to the first response (init + first invoke).

Measured in the same interleaved rounds (every case once a round, the order rotating each round,
a first round dropped; figures are medians):
- `python3.12 -I -c pass`: the unit of the absolute ratios;
- the API and the worker of each build (by default the current one, `.aws-sam/build`), and the
  peak RSS of each (in the child at its first response: `lambda_runtime.peak_rss_kb`);
- each function's floor, on each build's folders: `bench/floors/` holds a minimal function of each
  kind with none of Jobline's code (the libraries the function cannot do without, one botocore
  session and DynamoDB client, one request: a FastAPI route doing one GetItem for the API, one
  UpdateItem per record for the worker), started the same way with the same event. A function's
  ratio to its floor is the median of the per-round ratios: the two ran seconds apart, so the
  machine's load, which moves both, cancels out;
- the naive API (`bench/naive/naive_api.py`) deployed as a user's `sam build` would deploy it: one
  folder with its requirements installed by pip and no bytecode (SAM's pip workflow compiles
  nothing, and Lambda cannot write any).
After the rounds, one `-X importtime` start per function says where its imports go.

    python -m bench.lambda_like [--runs N] [--strip-bytecode] [LABEL=BUILD_DIR ...]
    python -m bench.lambda_like --instructions [LABEL=BUILD_DIR ...]   # valgrind: load-free

Prepared folders are kept under .aws-sam/bench-lambda (the runtime's boto3, the naive build).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

FLOORS_DIR = Path(__file__).with_name("floors")
FLOOR_HANDLERS = {"api": "api_floor.handler", "worker": "worker_floor.handler"}
"""Each function's floor (`bench/floors/`): what it cannot do without, and none of Jobline."""


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
    python_pass_cpu: float
    builds: list[str]
    timings: dict[str, list[float]] = field(default_factory=dict)
    """Seconds to the first response, per case, one per round (the rounds aligned)."""
    cpu: dict[str, list[float]] = field(default_factory=dict)
    """CPU seconds of each start (`Start.cpu_seconds`), per case, one per round."""
    rss_kb: dict[str, int] = field(default_factory=dict)
    """Peak resident set at the first response, per function case."""
    importtime: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Per function as built: (top-level package, microseconds of its own modules), largest first."""

    @property
    def medians(self) -> dict[str, float]:
        return {
            name: statistics.median(values) for name, values in self.timings.items()
        }

    @property
    def cpu_medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.cpu.items()}

    def ratio(self, name: str) -> float:
        """The case's median wall time over `python3.12 -I -c pass`'s."""
        return self.medians[name] / self.python_pass

    def cpu_ratio(self, name: str) -> float:
        """The case's median CPU time over `python3.12 -I -c pass`'s."""
        return self.cpu_medians[name] / self.python_pass_cpu

    def floor_ratio(
        self, function: str, label: str = AS_BUILT, cpu: bool = False
    ) -> float:
        """`function` ("api" or "worker") of build `label` over its floor on the same build: the
        median of the per-round ratios (of wall times, or of CPU times)."""
        times = self.cpu if cpu else self.timings
        return statistics.median(
            mine / floor
            for mine, floor in zip(
                times[f"{function} {label}"],
                times[floor_case(function, label)],
                strict=True,
            )
        )


def floor_case(function: str, label: str = AS_BUILT) -> str:
    """The name of `function`'s floor case on build `label`."""
    return f"{function} floor {label}"


@dataclass(frozen=True)
class _Case:
    variant: coldstart.Variant | None
    """None: `python3.12 -I -c pass`."""
    paths: list[Path]
    measure_rss: bool = True


def _cases(folders: dict[str, Path], builds: dict[str, Path]) -> dict[str, _Case]:
    """Every case of a run, in the order of a round: `pass`, then per build the API, its floor,
    the worker and its floor (each floor right after its function), then the naive API."""
    base = {variant.name: variant for variant in coldstart.variants()}
    runtime = folders["runtime"]
    cases: dict[str, _Case] = {PASS: _Case(None, [])}
    for label, build in builds.items():
        layout = build_folders(build)
        for name in ("api", "worker"):
            function_paths = [layout[name], layout["layer"], layout["types"], runtime]
            cases[f"{name} {label}"] = _Case(base[name], function_paths)
            cases[floor_case(name, label)] = _Case(
                floor_variant(name), [FLOORS_DIR, *function_paths], measure_rss=False
            )
    cases[NAIVE] = _Case(base["naive api"], [folders["naive"], runtime])
    return cases


def floor_variant(function: str) -> coldstart.Variant:
    """`function`'s floor as a variant: the same Lambda function's environment and event."""
    base = {variant.name: variant for variant in coldstart.variants()}[function]
    return coldstart.Variant(
        f"{function} floor",
        base.function,
        FLOOR_HANDLERS[function],
        [FLOORS_DIR],
        base.make_event,
        base.check,
    )


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
    layouts = dict(builds or {AS_BUILT: BUILD})
    if strip_bytecode and AS_BUILT in layouts:
        layouts[WITHOUT_PYC] = _without_bytecode(
            layouts[AS_BUILT], WORK / "without-pyc"
        )
    cases = _cases(folders, layouts)
    rss: dict[str, list[int]] = {
        name: [] for name, case in cases.items() if case.variant and case.measure_rss
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as workdir:
        for round_no in range(runs + 1):
            names = list(cases)
            shift = round_no % len(names)
            results = {
                name: _start(server, python, cases[name], workdir)
                for name in names[shift:] + names[:shift]
            }
            if round_no == 0:
                continue  # page cache, moto's first requests
            for name, start in results.items():
                timings[name].append(start.seconds)
                cpu[name].append(start.cpu_seconds)
                if name in rss:
                    rss[name].append(start.peak_kb)
        imports = {}
        if importtime:
            for name in ("api", "worker"):
                case = cases[f"{name} {next(iter(layouts))}"]
                imports[name] = _importtime(server, python, case, workdir)
    pass_timings, pass_cpu = timings.pop(PASS), cpu.pop(PASS)
    return LambdaLike(
        python_pass=statistics.median(pass_timings),
        python_pass_cpu=statistics.median(pass_cpu),
        builds=list(layouts),
        timings=timings,
        cpu=cpu,
        rss_kb={name: int(statistics.median(values)) for name, values in rss.items()},
        importtime=imports,
    )


@dataclass(frozen=True)
class Start:
    """One cold start."""

    seconds: float
    """Wall time from process start to the first response (`pass`: to exit)."""
    cpu_seconds: float
    """CPU time (user + system) of the process, start to exit: the process ends right after its
    first response. Other processes' load stretches wall time, much less CPU time."""
    peak_kb: int = 0


def _start(server: MotoServer, python: str, case: _Case, workdir: str) -> Start:
    """One cold start of `case`."""
    if case.variant is None:
        started = time.perf_counter()
        process = subprocess.Popen([python, "-I", "-c", "pass"], cwd=workdir)
        cpu = _reap(process)
        if process.returncode:
            raise RuntimeError("python3.12 -I -c pass failed")
        return Start(time.perf_counter() - started, cpu)
    start, _ = _invoke(server, python, case, workdir)
    return start


def _reap(process: subprocess.Popen[bytes], timeout_s: float = 60) -> float:
    """Wait for `process` to end; the CPU time (user + system) it used, in seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{process.args!r} did not end")
        time.sleep(0.001)


def _invoke(
    server: MotoServer,
    python: str,
    case: _Case,
    workdir: str,
    extra_args: tuple[str, ...] = (),
    wrapper: tuple[str, ...] = (),
) -> tuple[Start, str]:
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
                *wrapper,
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
        cpu = _reap(process, timeout_s=600 if wrapper else 60)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if not line:
        raise RuntimeError(f"{variant.name} under python3.12 failed:\n{stderr[-3000:]}")
    variant.check(server, event, json.loads(line))
    peak_kb = int(json.loads(stats)["maxrss_kb"]) if stats else 0
    return Start(elapsed, cpu, peak_kb), stderr


CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
COLLECTED = re.compile(r"^==\d+== Collected : (\d+)$", re.MULTILINE)


def instructions(
    server: MotoServer, builds: dict[str, Path] | None = None
) -> dict[str, int] | None:
    """Instructions executed by one start of each case but the naive API (`valgrind
    --tool=callgrind`, the whole process), `pass` included: the same figures on a quiet machine
    and a loaded one, at ~50x the time. None without python3.12 or valgrind."""
    python = python312()
    if python is None or shutil.which("valgrind") is None:
        return None
    folders = prepare(python)
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="jobline-bench-") as workdir:
        completed = subprocess.run(
            [*CALLGRIND, python, "-I", "-c", "pass"],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=True,
        )
        counts[PASS] = _collected(completed.stderr)
        for name, case in _cases(folders, builds or {AS_BUILT: BUILD}).items():
            if case.variant is None or name == NAIVE:
                continue
            _, stderr = _invoke(server, python, case, workdir, wrapper=CALLGRIND)
            counts[name] = _collected(stderr)
    return counts


def _collected(stderr: str) -> int:
    found = COLLECTED.search(stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{stderr[-2000:]}")
    return int(found.group(1))


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
    _, stderr = _invoke(server, python, case, workdir, ("-X", "importtime"))
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
        "--instructions",
        action="store_true",
        help="instead: one start of each case under valgrind, its instructions executed",
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
    if args.instructions:
        with MotoServer() as server:
            counts = instructions(server, builds or None)
        if counts is None:
            sys.stdout.write("python3.12 or valgrind not found\n")
            return
        unit = counts.pop(PASS)
        sys.stdout.write(f"{PASS}: {unit / 1e6:.0f} M instructions\n")
        for name, count in counts.items():
            function, _, label = name.partition(" ")
            floor_count = counts.get(floor_case(function, label))
            versus = f" = {count / floor_count:.3f}x its floor" if floor_count else ""
            sys.stdout.write(
                f"{name}: {count / 1e6:.0f} M = {count / unit:.1f}x pass{versus}\n"
            )
        return
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
    sys.stdout.write(
        f"{PASS}: {result.python_pass * 1000:.1f} ms "
        f"({result.python_pass_cpu * 1000:.1f} ms CPU)\n"
    )
    naive = result.medians[NAIVE]
    sys.stdout.write(
        f"{NAIVE}: {naive * 1000:.0f} ms = {result.ratio(NAIVE):.1f}x pass\n"
    )
    for label in result.builds:
        for name in ("api", "worker"):
            case, floor = f"{name} {label}", floor_case(name, label)
            versus = (
                f" = {result.medians[case] / naive:.2f}x naive" if name == "api" else ""
            )
            peak = result.rss_kb.get(case)
            memory = f", peak RSS {peak / 1024:.0f} MiB" if peak else ""
            sys.stdout.write(
                f"{case}: {result.medians[case] * 1000:.0f} ms = "
                f"{result.ratio(case):.1f}x pass = "
                f"{result.floor_ratio(name, label):.2f}x its floor{versus}{memory}; "
                f"CPU {result.cpu_medians[case] * 1000:.0f} ms = "
                f"{result.cpu_ratio(case):.1f}x pass = "
                f"{result.floor_ratio(name, label, cpu=True):.2f}x its floor; "
                f"floor {result.medians[floor] * 1000:.0f} ms = "
                f"{result.ratio(floor):.1f}x pass, CPU "
                f"{result.cpu_ratio(floor):.1f}x pass\n"
            )
    for name, packages in result.importtime.items():
        top = ", ".join(f"{package} {us / 1000:.0f}" for package, us in packages[:10])
        sys.stdout.write(f"-X importtime {name} (ms, own modules): {top}\n")


if __name__ == "__main__":
    main()
