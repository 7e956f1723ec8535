"""`make run`: the whole service on this machine until Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from jobline.logging import current_format, get_logger

from jobline_local.banner import render_banner, state_line, stop_line
from jobline_local.settings import LocalSettings
from jobline_local.stack import LocalStack, LocalStackError

log = get_logger("jobline_local")


def main() -> int:
    """Start the stack, say where everything is (a banner on a terminal, a JSON line otherwise),
    wait for a signal, stop; 0 on a clean stop."""
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
    settings = stack.settings
    console = current_format() == "console"  # a person at a terminal
    try:
        if console:
            sys.stdout.write(
                render_banner(
                    stack.api_url,
                    stack.aws_endpoint,
                    stack.provisioned.queue_urls,
                    stack.table_name,
                    region=settings.aws_region,
                    color=sys.stdout.isatty(),
                    state=state_line(
                        settings.state_file, stack.restored, settings.fresh
                    ),
                    concurrency=settings.sqs_concurrency,
                )
            )
            sys.stdout.flush()
        else:
            log.info("local.ready", **stack.describe())
        while not stop.wait(0.5):
            pass
        log.info("local.stopping")
    finally:
        clean = stack.stop()
        if console:
            sys.stdout.write(stop_line(settings.state_file, stack.kept))
            sys.stdout.flush()
    if not clean:
        # A job is still running in a worker thread; Lambda would freeze it, we end the process.
        log.warning("local.abandoned_running_batch")
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
