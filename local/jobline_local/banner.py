"""What `make run` prints for a person at a terminal once the stack is up: where everything is
and one command to try. Off a terminal the stack logs `local.ready` as JSON instead."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from jobline_local.state import StateSummary

DEFAULT_API_URL = "http://127.0.0.1:8000"
"""The CLI's default `--api`: the command to try names the API only when it listens elsewhere."""

_BOLD, _CYAN, _DIM, _RESET = "\033[1m", "\033[36m", "\033[2m", "\033[0m"


def _queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def render_banner(
    api_url: str,
    aws_endpoint: str,
    queue_urls: Mapping[str, str],
    table: str = "",
    *,
    region: str = "us-east-1",
    color: bool = False,
    state: str = "",
    concurrency: int = 0,
) -> str:
    """The banner: API, its docs, the dashboard, the AWS endpoint, the queue names, how many
    invocations run at once, what happens to the state (`state_line`), a command."""

    def bold(text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if color else text

    def link(text: str) -> str:
        return f"{_CYAN}{text}{_RESET}" if color else text

    def dim(text: str) -> str:
        return f"{_DIM}{text}{_RESET}" if color else text

    api_option = "" if api_url == DEFAULT_API_URL else f" --api {api_url}"
    queues = sorted(_queue_name(url) for url in queue_urls.values())
    rows = [
        ("API", link(api_url)),
        ("API docs", link(f"{api_url}/docs")),
        ("Dashboard", link(f"{api_url}/ui/") + dim("  (set Dev user, e.g. alice)")),
        (
            "AWS",
            link(aws_endpoint) + dim(f"  (moto, region {region}, any credentials)"),
        ),
    ]
    if table:
        rows.append(("Table", table))
    rows.append(("Queues", queues[0] if queues else "-"))
    rows.extend(("", name) for name in queues[1:])
    if concurrency:
        rows.append(
            (
                "Pollers",
                f"up to {concurrency} invocations at once per queue"
                + dim("  (JOBLINE_LOCAL_SQS_CONCURRENCY)"),
            )
        )
    if state:
        rows.append(("State", state))
    lines = ["", bold("Jobline is running locally.") + " Ctrl-C stops it.", ""]
    lines += [f"  {name:<10} {value}".rstrip() for name, value in rows]
    lines += [
        "",
        "  Try:",
        f'    .venv/bin/jobline submit echo \'{{"hello": "world"}}\' --wait --dev-user alice{api_option}',
        "",
    ]
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    """A path as a person typed it: relative to the working directory when it is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def state_line(path: Path | None, restored: StateSummary | None, fresh: bool) -> str:
    """What the start did with the saved state, and what the stop will do."""
    if path is None:
        return "in memory only: dropped at the stop (JOBLINE_LOCAL_STATE_FILE is empty)"
    where = _shown(path)
    if restored is not None:
        return (
            f"restored {restored.describe()} from {where}; "
            "saved there again at a clean stop"
        )
    start = "started clean (FRESH=1)" if fresh else "nothing saved"
    return f"{start}; saved to {where} at a clean stop (Ctrl-C), restored at the next start"


def stop_line(path: Path | None, kept: StateSummary | None) -> str:
    """What the stop did with the state: saved (and how to start clean), or dropped."""
    if kept is None:
        return "The state could not be saved (see the log above).\n"
    if path is None:
        return (
            f"State not kept (JOBLINE_LOCAL_STATE_FILE is empty): {kept.job_count} jobs "
            f"dropped, {kept.unfinished} of them queued or running.\n"
        )
    return (
        f"State saved to {_shown(path)}: {kept.describe()}. The next `make run` restores "
        "it: queued jobs run, running ones are taken over once their lease ends; "
        "`make run FRESH=1` starts clean.\n"
    )
