"""`jobline`: submit, read, list, watch, cancel and retry jobs from a shell.

Exit codes: 0 the call worked (for `--wait` and `watch`: the job succeeded); 1 the job ended
failed, cancelled, dead_lettered or rejected; 2 usage error; 3 API or network error; 4 `--timeout`
passed before the job ended; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from jobline_client.client import DEFAULT_API_URL, Client
from jobline_client.errors import (
    ApiError,
    InvalidRequest,
    JoblineClientError,
    Unauthorized,
    describe_detail,
)
from jobline_client.models import Job, JobStatus
from jobline_client.pacing import WaitTimeout
from jobline_client.render import (
    CLEAR_TO_END,
    job_table,
    jobs_table,
    json_text,
    progress_line,
    types_table,
)

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_API_ERROR = 3
EXIT_WAIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130

ENV_API_URL = "JOBLINE_API_URL"
ENV_TOKEN = "JOBLINE_TOKEN"
ENV_DEV_USER = "JOBLINE_DEV_USER"


@dataclass(frozen=True)
class Connection:
    """Where and as whom the command talks to the API (options, else environment, else default)."""

    api_url: str
    token: str | None
    dev_user: str | None


ClientFactory = Callable[[Connection], Client]


def default_client(connection: Connection) -> Client:
    """The client the command uses unless `main` is given another factory."""
    return Client(connection.api_url, connection.token, connection.dev_user)


class UsageError(Exception):
    """A command line the parser accepted but that cannot be run (e.g. a payload that is not JSON)."""


@dataclass
class Context:
    """One run of the command: its client, streams and output format."""

    client: Client
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    output: str

    def emit(self, text: str) -> None:
        self.stdout.write(text + "\n")

    def note(self, text: str) -> None:
        self.stderr.write(text + "\n")

    def show_job(self, job: Job) -> None:
        """The job, as a table or as the API's JSON with its linked data downloaded."""
        self.emit(json_text(job.as_json()) if self.output == "json" else job_table(job))


# ------------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text}")
    return value


def _connection_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command (SUPPRESS: an absent one overrides nothing)."""
    options = argparse.ArgumentParser(
        add_help=False, argument_default=argparse.SUPPRESS
    )
    group = options.add_argument_group("connection and output")
    group.add_argument(
        "--api",
        metavar="URL",
        help=f"the API's base URL (${ENV_API_URL}, default {DEFAULT_API_URL})",
    )
    group.add_argument(
        "--token", help=f"a bearer token (JWT) for the API (${ENV_TOKEN})"
    )
    group.add_argument(
        "--dev-user",
        metavar="USER",
        help=f"the caller on a local stack, sent as X-Dev-User (${ENV_DEV_USER})",
    )
    group.add_argument(
        "--output",
        choices=("table", "json"),
        help="table for people (default), or the API's JSON",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    """The `jobline` argument parser."""
    common = _connection_options()
    parser = argparse.ArgumentParser(
        prog="jobline",
        description="Submit and follow jobs on a Jobline service.",
        parents=[common],
        epilog="exit codes: 0 ok / job succeeded, 1 job failed/cancelled/dead_lettered/"
        "rejected, 2 usage, 3 API or network error, 4 --timeout reached",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[Context, argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(handler=handler, command_parser=sub)
        return sub

    submit = command("submit", _submit, "submit a job (and wait for it with --wait)")
    submit.add_argument(
        "type", metavar="TYPE", help="the job type (see `jobline types`)"
    )
    submit.add_argument(
        "payload",
        metavar="PAYLOAD",
        nargs="?",
        default="{}",
        help="the payload: JSON text, @FILE, or - for standard input (default {})",
    )
    submit.add_argument(
        "--wait", action="store_true", help="follow the job until it ends"
    )
    submit.add_argument("--idempotency-key", metavar="KEY")
    submit.add_argument(
        "--delay",
        type=int,
        default=0,
        metavar="S",
        help="delay the first run (0..900 s)",
    )
    submit.add_argument("--max-attempts", type=int, default=3, metavar="N")
    _timeout_option(submit)

    get = command("get", _get, "show a job")
    get.add_argument("id", metavar="ID")

    listing = command(
        "list",
        _list,
        "list your jobs, newest first (summaries: `get ID` shows a job whole)",
    )
    listing.add_argument("--status", choices=[status.value for status in JobStatus])
    listing.add_argument("--type", metavar="TYPE")
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=20,
        metavar="N",
        help="at most N jobs (default 20)",
    )

    watch = command("watch", _watch, "follow a job until it ends")
    watch.add_argument("id", metavar="ID")
    _timeout_option(watch)

    cancel = command("cancel", _cancel, "cancel a job")
    cancel.add_argument("id", metavar="ID")

    retry = command(
        "retry", _retry, "run a failed, dead-lettered or cancelled job again"
    )
    retry.add_argument("id", metavar="ID")

    command("types", _types, "list the job types and their payload fields")
    return parser


def _timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="stop waiting after S seconds (exit 4)",
    )


# ----------------------------------------------------------------------------- commands


def _read_payload(text: str, stdin: TextIO) -> Any:
    if text == "-":
        source, where = stdin.read(), "standard input"
    elif text.startswith("@"):
        try:
            source, where = Path(text[1:]).read_text(encoding="utf-8"), text[1:]
        except OSError as exc:
            raise UsageError(f"cannot read the payload file: {exc}") from exc
    else:
        source, where = text, "PAYLOAD"
    try:
        return json.loads(source)
    except ValueError as exc:
        raise UsageError(f"the payload in {where} is not JSON: {exc}") from exc


def _exit_for(job: Job) -> int:
    return EXIT_OK if job.status is JobStatus.SUCCEEDED else EXIT_JOB_FAILED


def _follow(context: Context, job_id: str, timeout: float | None) -> int:
    """Wait for the job with a progress line on stderr, then show it; exit code by its status."""
    live = context.stderr.isatty()
    drawn = False

    def show(job: Job) -> None:
        nonlocal drawn
        if live:
            context.stderr.write("\r" + progress_line(job, bar=True) + CLEAR_TO_END)
            context.stderr.flush()
            drawn = True
        else:
            context.note(progress_line(job, bar=False))

    try:
        job = context.client.wait(job_id, timeout=timeout, on_progress=show)
    except WaitTimeout as timed_out:
        if drawn:
            context.stderr.write("\n")
        context.show_job(timed_out.job)
        context.note(f"jobline: {timed_out}")
        return EXIT_WAIT_TIMEOUT
    if drawn:
        context.stderr.write("\n")
    context.show_job(job)
    return _exit_for(job)


def _submit(context: Context, args: argparse.Namespace) -> int:
    payload = _read_payload(args.payload, context.stdin)
    job = context.client.submit(
        args.type,
        payload,
        idempotency_key=args.idempotency_key,
        delay_seconds=args.delay,
        max_attempts=args.max_attempts,
    )
    if not args.wait:
        context.show_job(job)
        return EXIT_OK
    context.note(f"submitted {job.type} job {job.id}")
    return _follow(context, job.id, args.timeout)


def _get(context: Context, args: argparse.Namespace) -> int:
    context.show_job(context.client.get(args.id))
    return EXIT_OK


def _list(context: Context, args: argparse.Namespace) -> int:
    jobs = list(context.client.list(args.status, args.type, args.limit))
    if context.output == "json":
        context.emit(json_text([job.raw for job in jobs]))
    else:
        context.emit(jobs_table(jobs))
    return EXIT_OK


def _watch(context: Context, args: argparse.Namespace) -> int:
    return _follow(context, args.id, args.timeout)


def _cancel(context: Context, args: argparse.Namespace) -> int:
    context.show_job(context.client.cancel(args.id))
    return EXIT_OK


def _retry(context: Context, args: argparse.Namespace) -> int:
    context.show_job(context.client.retry(args.id))
    return EXIT_OK


def _types(context: Context, args: argparse.Namespace) -> int:
    job_types = context.client.job_types()
    if context.output == "json":
        context.emit(json_text([info.raw for info in job_types]))
    else:
        context.emit(types_table(job_types))
    return EXIT_OK


# --------------------------------------------------------------------------------- main


def identity_hint(connection: Connection) -> str:
    """How to pass an identity, after a 401, given what was sent."""
    local = f"--dev-user NAME (or ${ENV_DEV_USER}) on a local stack (make run)"
    deployed = f"--token JWT (or ${ENV_TOKEN}) for a deployed API"
    if connection.token:
        return (
            "the token was refused (expired, or not from the API's issuer and audience?): "
            f"pass another with {deployed}"
        )
    if connection.dev_user:
        return (
            "X-Dev-User is honoured only by a local stack (JOBLINE_ALLOW_DEV_IDENTITY); "
            f"pass {deployed}"
        )
    return f"no identity was sent: pass {deployed}, or {local}"


def _report(error: JoblineClientError, stderr: TextIO, connection: Connection) -> None:
    if isinstance(error, InvalidRequest) and error.details:
        stderr.write(f"jobline: the API refused the request ({error.status}):\n")
        for item in error.details:
            stderr.write(f"  {describe_detail([item])}\n")
    elif isinstance(error, Unauthorized) and error.status == 401:
        stderr.write(f"jobline: the API answered {error.status}: {error.message}\n")
        stderr.write(f"jobline: {identity_hint(connection)}\n")
    elif isinstance(error, ApiError):
        stderr.write(f"jobline: the API answered {error.status}: {error.message}\n")
    else:
        stderr.write(f"jobline: {error}\n")


def _exit_code(exc: SystemExit) -> int:
    return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def main(
    argv: Sequence[str] | None = None,
    *,
    client_factory: ClientFactory | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run `jobline` with `argv` (default: the process's arguments); return the exit code.

    Everything it depends on can be given: the client (`client_factory`), the environment the
    options fall back to, and the streams."""
    env = os.environ if environ is None else environ
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            args = parser.parse_args(argv)
            connection = Connection(
                api_url=getattr(args, "api", None)
                or env.get(ENV_API_URL)
                or DEFAULT_API_URL,
                token=getattr(args, "token", None) or env.get(ENV_TOKEN) or None,
                dev_user=getattr(args, "dev_user", None)
                or env.get(ENV_DEV_USER)
                or None,
            )
            try:
                client = (client_factory or default_client)(connection)
            except ValueError as exc:
                parser.error(str(exc))
    except SystemExit as exc:
        return _exit_code(exc)

    context = Context(
        client=client,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        output=getattr(args, "output", None) or "table",
    )
    handler: Callable[[Context, argparse.Namespace], int] = args.handler
    try:
        with client:
            return handler(context, args)
    except UsageError as exc:
        try:
            with redirect_stderr(stderr):
                args.command_parser.error(str(exc))
        except SystemExit as exit_:
            return _exit_code(exit_)
        return EXIT_USAGE  # pragma: no cover - error() always exits
    except JoblineClientError as exc:
        _report(exc, stderr, connection)
        return EXIT_API_ERROR
    except KeyboardInterrupt:
        stderr.write("\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
