"""`make run`: the whole service on this machine until Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from jobline.logging import get_logger

from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack, LocalStackError

log = get_logger("jobline_local")


def main() -> int:
    """Start the stack, log where everything is, wait for a signal, stop; 0 on a clean stop."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    stack = LocalStack(LocalSettings())
    try:
        stack.start()
    except LocalStackError as exc:
        log.error("local.failed", error=str(exc))
        return 1
    try:
        log.info("local.ready", **stack.describe())
        while not stop.wait(0.5):
            pass
        log.info("local.stopping")
    finally:
        clean = stack.stop()
    if not clean:
        # A job is still running in a worker thread; Lambda would freeze it, we end the process.
        log.warning("local.abandoned_running_batch")
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
