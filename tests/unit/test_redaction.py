"""No secrets in logs or job errors: URLs lose their userinfo and query string, secret headers
their values, and no log line carries a payload or a result."""

from __future__ import annotations

import base64
import ipaddress
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from jobline.egress import EgressPolicy
from jobline.logging import configure, get_logger
from jobline.models import JobStatus, SubmitRequest
from jobline.redaction import (
    NOT_LOGGED,
    REDACTED,
    SECRET_HEADERS,
    Redaction,
    redact_text,
    redact_url,
)
from jobline.registry import JobTypeRegistry
from jobline.service import RunOutcome
from jobline_examples import http_request
from jobline_examples.http_request import HttpRequestOptions

from tests.support.builders import ANN, delivery_of
from tests.support.services import build_fake_service

TOKEN = "tok-3f9a1c"
PASSWORD = "pw-77d2e0"
LOOPBACK = EgressPolicy(allow=(ipaddress.ip_network("127.0.0.0/8"),))


class _Handler(BaseHTTPRequestHandler):
    """/fail: a 500 whose body echoes the query and the Authorization header; /ok: cookies."""

    def do_GET(self) -> None:
        if self.path == "/auth":
            body = str(self.headers.get("Authorization")).encode()
            self.send_response(200)
        elif self.path.startswith("/fail"):
            body = f"denied {self.path} {self.headers.get('Authorization')}".encode()
            self.send_response(500)
        else:
            body = b"{}"
            self.send_response(200)
            self.send_header("Set-Cookie", f"session={TOKEN}")
            self.send_header("X-Session", TOKEN)
            self.send_header("X-Visible", "kept")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def server_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def fresh_log_context() -> Iterator[None]:
    yield
    structlog.contextvars.clear_contextvars()


def _service() -> Any:
    options = HttpRequestOptions(egress=LOOPBACK, redaction=Redaction.of(["X-Session"]))
    return build_fake_service(JobTypeRegistry([http_request.job_type(options)]))


def _lines(captured: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.splitlines() if line.strip()]


def test_a_failed_request_keeps_credentials_out_of_the_job_error_and_the_logs(
    server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an http.request job with credentials in its URL (userinfo, query) and headers
    service, _, _ = _service()
    url = f"http://admin:{PASSWORD}@{server_url}/fail?api_key={TOKEN}&page=2"
    job = service.submit(
        ANN,
        SubmitRequest(
            type="http.request",
            payload={"url": url, "headers": {"Authorization": f"Bearer {TOKEN}"}},
            max_attempts=1,
        ),
    ).job
    capsys.readouterr()

    # When the server answers 500, echoing them in its body
    assert service.run(delivery_of(job)) is RunOutcome.DONE

    # Then the stored error names the request without them, and quotes no body
    failed = service.get(ANN, job.id)
    assert failed.status is JobStatus.FAILED and failed.error is not None
    assert failed.error.message == (
        f"GET http://{server_url}/fail?{REDACTED} answered 500"
    )
    assert failed.history[-1].error == failed.error
    # And no log line of the run holds a credential or the remote body
    output = capsys.readouterr().out
    assert _lines(output)
    for secret in (TOKEN, PASSWORD, "denied", "Bearer"):
        assert secret not in output


def test_secret_response_headers_are_redacted_in_the_stored_result(
    server_url: str,
) -> None:
    service, _, _ = _service()
    job = service.submit(
        ANN,
        SubmitRequest(type="http.request", payload={"url": f"http://{server_url}/ok"}),
    ).job

    assert service.run(delivery_of(job)) is RunOutcome.DONE

    headers = service.get(ANN, job.id).result["headers"]
    assert headers["Set-Cookie"] == REDACTED  # always secret
    assert headers["X-Session"] == REDACTED  # named by the deployment
    assert headers["X-Visible"] == "kept"


def test_userinfo_in_the_url_is_sent_as_basic_authorization(server_url: str) -> None:
    service, _, _ = _service()
    url = f"http://admin:{PASSWORD}@{server_url}/auth"
    job = service.submit(
        ANN, SubmitRequest(type="http.request", payload={"url": url})
    ).job

    assert service.run(delivery_of(job)) is RunOutcome.DONE

    sent = service.get(ANN, job.id).result["body"]
    assert sent == "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def test_log_lines_never_carry_payloads_results_or_credentials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure()
    log = get_logger("test")
    capsys.readouterr()

    log.info(
        "anything",
        payload={"card": "4111"},
        result={"secret": TOKEN},
        url=f"https://u:{PASSWORD}@example.com/p?token={TOKEN}",
        authorization=f"Bearer {TOKEN}",
        x_api_key=TOKEN,
        error=f"GET https://example.com/?sig={TOKEN} failed",
        nested={"cookie": TOKEN, "ok": "kept"},
    )
    try:
        raise ValueError(f"calling https://example.com/x?key={TOKEN}")
    except ValueError:
        log.exception("crashed")

    output = capsys.readouterr().out
    first, second = _lines(output)
    assert (first["payload"], first["result"]) == (NOT_LOGGED, NOT_LOGGED)
    assert first["url"] == f"https://example.com/p?{REDACTED}"
    assert first["authorization"] == first["x_api_key"] == REDACTED
    assert first["nested"] == {"cookie": REDACTED, "ok": "kept"}
    assert "ValueError" in second["exception"]
    for secret in (TOKEN, PASSWORD, "4111"):
        assert secret not in output


# ------------------------------------------------------------------------- properties

_safe = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12
)
_secret = st.text(min_size=1, max_size=20).map(lambda text: "S3CR3T" + text)


@given(_safe, _secret, _secret, st.lists(st.tuples(_safe, _secret), max_size=3), _safe)
def test_a_redacted_url_keeps_no_userinfo_or_query(
    host: str, user: str, password: str, query: list[tuple[str, str]], path: str
) -> None:
    params = "&".join(f"{key}={quote(value, safe='')}" for key, value in query)
    url = (
        f"https://{quote(user, safe='')}:{quote(password, safe='')}@{host}.example"
        f"/{path}?{params}#frag"
    )

    redacted = redact_url(url)

    assert redacted.startswith(f"https://{host}.example/{path}")
    assert "S3CR3T" not in redacted and "frag" not in redacted
    assert redact_url(redacted) == redacted
    assert redact_text(f"failed: {url} (timeout)") == f"failed: {redacted} (timeout)"


@given(
    st.dictionaries(
        st.sampled_from([*sorted(SECRET_HEADERS), "X-Custom", "Accept", "x-trace"]).map(
            lambda name: name.title() if len(name) % 2 else name
        ),
        _secret,
    )
)
def test_secret_header_values_are_never_kept(headers: dict[str, str]) -> None:
    redacted = Redaction.of(["x-custom"]).headers(headers)

    assert set(redacted) == set(headers)
    for name, value in redacted.items():
        secret = name.lower() in SECRET_HEADERS or name.lower() == "x-custom"
        assert value == (REDACTED if secret else headers[name])
