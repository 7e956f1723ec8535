"""A Lambda-like runtime for one cold start, run as a fresh interpreter by `bench.coldstart`.

    python bench/lambda_runtime.py HANDLER EVENT_FILE RESPONSE_FD [WARM_INVOCATIONS]

Like Lambda's Python runtime it imports the handler module (the init phase), then calls the
handler with one event and a context (the first invoke) and hands the response back; here the
response goes to the file descriptor RESPONSE_FD (stdout is the function's log, as on Lambda).
With WARM_INVOCATIONS, the same event is then served that many more times and a second line
gives each warm invocation's duration in milliseconds. The process ends right after: nothing
after the last line is timed.

Run with `python -I` (as `bench.lambda_like` does: no PYTHON* variables, no user site, no script
folder on the path), the code folders come from BENCH_SYS_PATH (os.pathsep-separated, put first
on sys.path, as Lambda puts /var/task and /opt/python). With BENCH_REPORT_RSS set, a line
`{"maxrss_kb": N}` follows the response: the process's peak resident set at the first response
(`peak_rss_kb`).
"""

import importlib
import json
import os
import sys
import time
import uuid


class Context:
    """The parts of Lambda's context object a handler reads."""

    def __init__(self, timeout_s: float) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "bench")
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 512
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def peak_rss_kb() -> int:
    """The process's peak resident set (kB) so far. `VmHWM` of /proc/self/status where there is
    one: `resource.getrusage(RUSAGE_SELF).ru_maxrss` keeps, across fork and exec, the peak of the
    process that started this one (the bench's own ~90 MB), so it would report that instead."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> None:
    code_paths = os.environ.get("BENCH_SYS_PATH")
    if code_paths:
        sys.path[0:0] = code_paths.split(os.pathsep)
    handler_spec, event_path, response_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    warm_invocations = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    timeout_s = float(os.environ.get("BENCH_TIMEOUT_S", "60"))
    module_name, _, attribute = handler_spec.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    with open(event_path, encoding="utf-8") as handle:
        event = json.load(handle)
    response = handler(event, Context(timeout_s))
    os.write(response_fd, json.dumps(response).encode() + b"\n")
    if os.environ.get("BENCH_REPORT_RSS"):
        os.write(response_fd, json.dumps({"maxrss_kb": peak_rss_kb()}).encode() + b"\n")
    if warm_invocations:
        durations = []
        for _ in range(warm_invocations):
            started = time.perf_counter()
            handler(event, Context(timeout_s))
            durations.append((time.perf_counter() - started) * 1000)
        os.write(response_fd, json.dumps(durations).encode() + b"\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
