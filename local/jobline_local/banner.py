"""What `make run` prints for a person at a terminal once the stack is up: where everything is
and one command to try. Off a terminal the stack logs `local.ready` as JSON instead."""

from __future__ import annotations

from collections.abc import Mapping

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
) -> str:
    """The banner: API, its docs, the dashboard, the AWS endpoint, the queue names, a command."""

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
    lines = ["", bold("Jobline is running locally.") + " Ctrl-C stops it.", ""]
    lines += [f"  {name:<10} {value}".rstrip() for name, value in rows]
    lines += [
        "",
        "  Try:",
        f'    .venv/bin/jobline submit echo \'{{"hello": "world"}}\' --wait --dev-user alice{api_option}',
        "",
    ]
    return "\n".join(lines) + "\n"
