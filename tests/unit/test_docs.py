"""The documentation keeps its promises: every relative link lands on a file (and an anchor on a
heading), the README stays a front door, the configuration tables list every setting with the
default the code has, and the README's limits are the numbers the code, the template and
samconfig.toml enforce."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from jobline import limits, validation
from jobline.config import JobTypeSettings, LogSettings, Settings
from jobline_local.settings import LocalSettings
from jobline_local.template import load_template
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(
    [README, *DOCS.glob("*.md"), ROOT / "clients" / "python" / "README.md"],
    key=lambda page: str(page),
)
MAX_README_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
EXTERNAL = re.compile(
    r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE
)  # http:, https:, mailto:...


def _relative(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def _prose(text: str) -> str:
    """The page without its fenced code blocks (a `# comment` there is no heading)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as shown (no markup), lower case, without
    punctuation but `-` and `_`, each space a `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[*`]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor on a page; a repeated heading gets `-1`, `-2`... as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for match in HEADING.finditer(_prose(page.read_text(encoding="utf-8"))):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> Iterator[str]:
    """The targets of the page's inline links and images, outside code blocks."""
    for match in LINK.finditer(_prose(page.read_text(encoding="utf-8"))):
        yield match.group(1)


def broken_link(page: Path, target: str) -> str | None:
    """Why `target`, linked from `page`, leads nowhere; None when it resolves."""
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    if not destination.exists():
        return f"{_relative(page)}: {target} (no such file)"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"{_relative(page)}: {target} (no heading #{anchor} there)"
    return None


# ------------------------------------------------------------------------------ links


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Redrive (`make redrive`)", "redrive-make-redrive"),
        ("2. Cost of a million echo jobs", "2-cost-of-a-million-echo-jobs"),
        ("Outbound requests (`http.request`)", "outbound-requests-httprequest"),
        ("Why Jobline, and when not to", "why-jobline-and-when-not-to"),
        (
            "Build: bytecode, nothing twice, a lock file",
            "build-bytecode-nothing-twice-a-lock-file",
        ),
    ],
)
def test_anchors_are_githubs(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_a_link_to_a_missing_file_or_heading_is_found(tmp_path: Path) -> None:
    # Given a page linking to itself, to a file that exists and to things that do not
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text(
        "# Other\n\n## A `code` heading\n", encoding="utf-8"
    )
    page.write_text(
        "# Page\n\n```sh\n# not a heading\n```\n\n[x](other.md#a-code-heading) [y](#page) "
        "[z](missing.md) [w](other.md#nowhere) [v](#not-a-heading) <https://example.com>\n",
        encoding="utf-8",
    )

    # Then exactly the broken ones are reported
    problems = [broken_link(page, target) for target in links(page)]
    assert [problem is None for problem in problems] == [
        True,
        True,
        False,
        False,
        False,
    ]


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_every_relative_link_resolves(page: Path) -> None:
    # Given the page's links to files of this repository
    targets = [target for target in links(page) if not EXTERNAL.match(target)]
    assert targets, (
        f"{_relative(page)} links to nothing: is the link pattern still right?"
    )

    # Then each lands on a file, and an #anchor on one of its headings
    broken = [problem for target in targets if (problem := broken_link(page, target))]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move detail to docs/"
    )


def test_the_readme_links_every_docs_page() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in links(README)
        if not EXTERNAL.match(target)
    }
    unlinked = [
        _relative(page) for page in DOCS.glob("*.md") if page.resolve() not in linked
    ]
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"


# ------------------------------------------------------------------------------ tables


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def table_rows(text: str, header: Sequence[str]) -> list[list[str]]:
    """The rows of every table of `text` whose header row starts with `header`'s cells."""
    rows: list[list[str]] = []
    lines = _prose(text).splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("|") or _cells(line)[: len(header)] != list(header):
            continue
        for row in lines[index + 2 :]:  # after the |---| line
            if not row.startswith("|"):
                break
            rows.append(_cells(row))
    return rows


# ------------------------------------------------------------------------------ configuration

CONFIGURATION = DOCS / "configuration.md"
SETTINGS: tuple[type[BaseSettings], ...] = (
    Settings,
    LogSettings,
    LocalSettings,
    JobTypeSettings,
)
"""Every class that reads `JOBLINE_*` variables."""


def shown(field: FieldInfo) -> str:
    """A default as the configuration page writes it (the first `code` of its default cell)."""
    if field.is_required():
        return "required"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list | frozenset | set) and not value:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    raise AssertionError(
        f"no written form for the default {value!r}: add one to shown()"
    )


def expected_settings() -> dict[str, set[str]]:
    """Every variable named JOBLINE_<FIELD> (its class's prefix and the field's name) with the
    defaults of the fields reading it. Fields read under another name (`AWS_REGION`...) are
    the platform's, not settings of ours."""
    expected: dict[str, set[str]] = {}
    for model in SETTINGS:
        prefix = str(model.model_config.get("env_prefix", ""))
        for name, field in model.model_fields.items():
            if field.validation_alias is not None:
                continue
            expected.setdefault(f"{prefix}{name}".upper(), set()).add(shown(field))
    return expected


def documented_settings() -> dict[str, str]:
    """The configuration page's rows: variable -> the default it shows."""
    rows = table_rows(
        CONFIGURATION.read_text(encoding="utf-8"), ["variable", "default"]
    )
    documented: dict[str, str] = {}
    for row in rows:
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", row[0])
        default = re.search(r"`([^`]*)`", row[1])
        assert len(names) == 1, f"one variable per row: {row[0]}"
        assert default, f"{names[0]}: write its default in `code`, first in the cell"
        assert names[0] not in documented, f"{names[0]} has two rows"
        documented[names[0]] = default.group(1)
    return documented


def test_the_configuration_tables_are_read() -> None:
    assert {"JOBLINE_TABLE_NAME", "JOBLINE_LOCAL_API_PORT"} <= set(
        documented_settings()
    )


def test_every_setting_has_a_row() -> None:
    missing = sorted(set(expected_settings()) - set(documented_settings()))
    assert not missing, f"docs/configuration.md lacks a row for: {missing}"


def test_no_row_names_a_setting_that_is_gone() -> None:
    ours = {name for name in documented_settings() if name.startswith("JOBLINE_")}
    stale = sorted(ours - set(expected_settings()))
    assert not stale, (
        f"docs/configuration.md documents settings no class reads: {stale}"
    )


def test_every_row_shows_the_default_of_the_code() -> None:
    documented = documented_settings()
    wrong = {
        name: (documented[name], sorted(defaults))
        for name, defaults in expected_settings().items()
        if name in documented and defaults != {documented[name]}
    }
    assert not wrong, f"docs/configuration.md: (shown, code's) defaults differ: {wrong}"


# ------------------------------------------------------------------------------ limits


MIB = 1024 * 1024


def default(field: str) -> int:
    return int(Settings.model_fields[field].default)


def numbers(cell: str) -> list[int]:
    return [int(number) for number in re.findall(r"\d+", cell)]


def list_limit() -> dict[str, Any]:
    """`GET /jobs`'s `limit` in the API's OpenAPI document (tests/contract checks it is the app's)."""
    document = json.loads((DOCS / "openapi.json").read_text(encoding="utf-8"))
    [parameter] = [
        p
        for p in document["paths"]["/jobs"]["get"]["parameters"]
        if p["name"] == "limit"
    ]
    schema: dict[str, Any] = parameter["schema"]
    return schema


def expected_limits() -> dict[str, list[int]]:
    """Each row of the README's limits table: the numbers its value cell must show, in order."""
    template = load_template()
    worker_timeout = int(
        template["Resources"]["WorkerFunction"]["Properties"]["Timeout"]
    )
    long_timeout = int(
        template["Resources"]["LongWorkerFunction"]["Properties"]["Timeout"]
    )
    margin_s = default("deadline_margin_ms") // 1000
    with (ROOT / "samconfig.toml").open("rb") as handle:
        prod = tomllib.load(handle)["prod"]["deploy"]["parameters"][
            "parameter_overrides"
        ]
    prod_retention = int(
        dict(item.split("=", 1) for item in shlex.split(prod))["RetentionDays"]
    )
    retention = default("retention_days")
    assert int(template["Parameters"]["RetentionDays"]["Default"]) == retention
    page = list_limit()
    assert (page["maximum"], page["default"]) == (
        limits.MAX_PAGE_SIZE,
        limits.DEFAULT_PAGE_SIZE,
    )
    return {
        "payload": [
            default("max_payload_bytes") // MIB,
            limits.INLINE_DATA_BYTES // 1024,
            limits.MAX_REQUEST_BODY_BYTES // MIB,
        ],
        "result": [
            default("max_result_bytes") // MIB,
            limits.INLINE_DATA_BYTES // 1024,
            limits.DATA_URL_TTL_S,
        ],
        "error": [limits.MAX_ERROR_TEXT_BYTES, limits.MAX_ATTEMPT_ERROR_TEXT_BYTES],
        "run time of one attempt, default lane": [
            worker_timeout - margin_s,
            worker_timeout,
            margin_s,
            limits.DEFAULT_TIMEOUT_S,
        ],
        "run time of one attempt, long lane": [
            long_timeout - margin_s,
            long_timeout,
            margin_s,
        ],
        "run time of a job that continues": [limits.MAX_RUNTIME_S],
        "saved state": [limits.MAX_CHECKPOINT_BYTES // 1024],
        "page size": [page["minimum"], page["maximum"], page["default"]],
        "page bytes": [limits.LIST_PAGE_MAX_BYTES // (1024 * 1024)],
        "error in a listing": [limits.SUMMARY_TEXT_CHARS],
        "retention": [retention, prod_retention],
        "delay": [0, limits.MAX_DELAY_S],
        "attempts": [
            limits.MIN_ATTEMPTS,
            limits.MAX_ATTEMPTS,
            limits.DEFAULT_MAX_ATTEMPTS,
        ],
        "history": [limits.MAX_HISTORY],
        "payload nesting": [validation.MAX_PAYLOAD_DEPTH],
        "identity": [1, validation.MAX_IDENTITY_CHARS],
    }


def test_the_limits_are_the_codes() -> None:
    # Given the README's limits table
    rows = table_rows(README.read_text(encoding="utf-8"), ["limit", "value"])
    shown_limits = {row[0]: numbers(row[1]) for row in rows}

    # Then it has a row for each limit, showing the numbers the code enforces
    expected = expected_limits()
    assert set(shown_limits) == set(expected)
    wrong = {
        name: (shown_limits[name], numbers_)
        for name, numbers_ in expected.items()
        if shown_limits[name] != numbers_
    }
    assert not wrong, f"README.md limits: (shown, code's) numbers differ: {wrong}"


def test_the_limits_are_whole_kib_and_seconds() -> None:
    # The table writes payload and result in MiB (what the item holds in KiB) and the margin in
    # seconds: they must divide
    assert default("max_payload_bytes") % MIB == 0
    assert default("max_result_bytes") % MIB == 0
    assert limits.INLINE_DATA_BYTES % 1024 == 0
    assert limits.MAX_REQUEST_BODY_BYTES % MIB == 0
    assert default("deadline_margin_ms") % 1000 == 0
    assert limits.LIST_PAGE_MAX_BYTES % (1024 * 1024) == 0
