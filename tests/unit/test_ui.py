"""The dashboard's HTTP side: served by the API without an identity, under a strict CSP, from
relative URLs only (so it works behind a named stage), and nothing but its own files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from jobline_api.app import create_app
from jobline_api.handler import lambda_handler
from jobline_api.ui import ASSETS, CONTENT_SECURITY_POLICY, SECURITY_HEADERS

from tests.conftest import FakeLambdaContext
from tests.support.events import http_api_event
from tests.support.services import build_fake_service

STATIC = Path(__file__).resolve().parents[2] / "functions/api/jobline_api/static"
JAVASCRIPT = "text/javascript; charset=utf-8"
"""What a browser requires of a module script's response (it refuses to run any other type)."""
ENTRY = "app.js"
"""The page's one script tag: the module that imports the others."""
SCRIPTS = sorted(name for name in ASSETS if name.endswith(".js"))
IMPORT = re.compile(
    r"""^(?:import|export)\s*(?:[\w$*{}\s,]+?\s*from\s*)?(["'])(?P<specifier>[^"']+)\1""",
    re.MULTILINE,
)
"""`import {a, b} from "./x.js"`, `import "./x.js"`, `export * from "./x.js"` (over lines too)."""


@pytest.fixture
def client() -> Iterator[TestClient]:
    service, _, _ = build_fake_service()
    app = create_app(service_factory=lambda: service, allow_dev_identity=True)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


class _Page(HTMLParser):
    """Every tag of the page with its attributes, and whether a script has inline text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def test_ui_slash_redirects_relatively_to_the_page(client: TestClient) -> None:
    # When /ui/ is requested without an identity
    response = client.get("/ui/", follow_redirects=False)

    # Then it redirects to ../ui relative to itself (so /prod/ui/ goes to /prod/ui): the page is
    # /ui, whose files API Gateway can route without the authorizer as /ui/{proxy+}
    assert response.status_code == 307
    assert response.headers["location"] == "../ui"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_the_page_is_public_and_served_under_a_strict_policy(
    client: TestClient,
) -> None:
    # When the page is requested without an identity
    response = client.get("/ui")

    # Then it is the HTML page with the policy: nothing inline, nothing from elsewhere
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_page_has_no_inline_code_and_only_relative_urls() -> None:
    # Given the page's HTML
    page = _Page()
    page.feed((STATIC / "index.html").read_text())

    # Then no script is inline, no element has an event handler or a style attribute
    assert not page.inline_script
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts == [{"type": "module", "src": "ui/app.js"}]
    for tag, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")], tag
        assert "style" not in attrs, tag
        # And every URL is relative to the page (no origin, no absolute path: named stages)
        for name in ("src", "href", "action"):
            url = attrs.get(name)
            assert url is None or not re.match(r"^(/|[a-z]+:)", url), (tag, url)


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_script_never_parses_data_as_html(name: str) -> None:
    # Given one of the page's scripts: job payloads, results and errors are attacker-controlled
    script = (STATIC / name).read_text()

    # Then it puts nothing in the page as markup, and evaluates no strings
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script
    assert not re.search(r"\beval\(|new Function\(", script)
    # And it calls the API relative to the page's folder (works under /{stage}/ui/)
    assert not re.search(r"""fetch\(\s*["'`]/""", script)


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_each_file_of_the_page_is_served_with_its_type(
    client: TestClient, name: str
) -> None:
    response = client.get(f"/ui/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == ASSETS[name]
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for header, value in SECURITY_HEADERS.items():
        assert response.headers[header] == value, header
    assert response.content == (STATIC / name).read_bytes()


def imports_of(name: str) -> list[str]:
    """The specifiers of a script's static imports (and re-exports)."""
    script = (STATIC / name).read_text()
    specifiers = [match["specifier"] for match in IMPORT.finditer(script)]
    # Every import statement is one the pattern reads, and none is dynamic (an `import(...)`
    # would load a module this check cannot see)
    statements = re.findall(r"^(?:import\b|export\s*[*{])", script, re.MULTILINE)
    assert len(specifiers) == len(statements), f"{name}: an import the test cannot read"
    assert not re.search(r"\bimport\s*\(", script), f"{name}: a dynamic import"
    return specifiers


def test_every_module_the_page_imports_is_served_as_javascript() -> None:
    # Given the modules reached from the page's script through their imports
    reached: set[str] = set()
    pending = [ENTRY]
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        for specifier in imports_of(name):
            # Then each import is relative to the module's own folder (./name.js: it resolves
            # to /ui/name.js, and to /prod/ui/name.js behind a named stage) ...
            assert re.fullmatch(r"\./[\w-]+\.js", specifier), (name, specifier)
            imported = specifier.removeprefix("./")
            # ... and names a file the router serves, as JavaScript
            assert imported in ASSETS, f"{name} imports {specifier}: not in ui.ASSETS"
            assert ASSETS[imported] == JAVASCRIPT, imported
            pending.append(imported)

    # And every script served is one the page runs
    assert ASSETS[ENTRY] == JAVASCRIPT
    assert sorted(reached) == SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_is_a_short_file_of_short_lines(name: str) -> None:
    lines = (STATIC / name).read_text().splitlines()
    assert len(lines) < 300
    assert [n for n, line in enumerate(lines, 1) if len(line) > 100] == []


@pytest.mark.parametrize(
    "path", ["/ui/missing.js", "/ui/..%2Fui.py", "/ui/%2E%2E%2Fhandler.py", "/ui/a/b"]
)
def test_nothing_else_is_served(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_every_static_file_is_one_the_router_serves() -> None:
    # The API function ships functions/api/ (its CodeUri): nothing in static/ goes unserved
    assert sorted(path.name for path in STATIC.iterdir()) == sorted(ASSETS)


def test_the_dashboard_is_not_part_of_the_api_spec(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]


def test_behind_a_named_stage_the_page_and_its_redirect_keep_the_stage() -> None:
    # Given API Gateway events for the stage "prod", without any identity
    context = FakeLambdaContext(function_name="jobline-api")

    # When /prod/ui/ and /prod/ui go through the Lambda handler
    redirect = lambda_handler(http_api_event("GET", "/ui/", stage="prod"), context)
    page = lambda_handler(http_api_event("GET", "/ui", stage="prod"), context)

    # Then /prod/ui/ redirects to ../ui (the browser resolves it to /prod/ui), the page
    assert redirect["statusCode"] == 307
    assert redirect["headers"]["location"] == "../ui"
    assert page["statusCode"] == 200
    assert page["headers"]["content-type"] == "text/html; charset=utf-8"
    assert not page["isBase64Encoded"]
    assert '<script type="module" src="ui/app.js"></script>' in page["body"]
