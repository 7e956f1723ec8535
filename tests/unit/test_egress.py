"""http.request's egress policy: public addresses only unless allow-listed, checked on the address
each connection uses; no redirects followed; the Lambda runtime API never reachable."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jobline.bootstrap import default_registry
from jobline.config import Settings
from jobline.egress import DENIED_NETWORKS, EgressPolicy, EgressRefused
from jobline.models import JobStatus, SubmitRequest
from jobline.registry import JobContext
from jobline.service import RunOutcome
from jobline_examples import http_request
from jobline_examples.http_request import HttpRedirectNotFollowed, HttpRequestOptions

from tests.support.builders import ANN, delivery_of
from tests.support.services import build_fake_service

LOOPBACK = EgressPolicy(allow=(ipaddress.ip_network("127.0.0.0/8"),))


@dataclass
class Hits:
    paths: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    hits: Hits
    redirect_to: str = ""

    def do_GET(self) -> None:
        self.hits.paths.append(self.path)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@dataclass
class Server:
    url: str
    port: int
    hits: Hits


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    hits = Hits()

    class Handler(_Handler):
        pass

    Handler.hits = hits
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    Handler.redirect_to = f"http://127.0.0.1:{port}/ok"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{port}", int(port), hits)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _context() -> JobContext:
    return JobContext(
        job_id="0" * 32,
        job_type="http.request",
        attempt=1,
        max_attempts=3,
        deadline=time.monotonic() + 30,
    )


def _run(url: str, policy: EgressPolicy | None = None) -> Any:
    job_type = (
        default_registry().get("http.request")
        if policy is None
        else http_request.job_type(HttpRequestOptions(egress=policy))
    )
    return job_type.run({"url": url, "timeout_s": 2}, _context())


# ------------------------------------------------------------------ the default policy


def test_by_default_a_loopback_server_is_never_contacted(server: Server) -> None:
    with pytest.raises(EgressRefused) as caught:
        _run(f"{server.url}/ok")

    assert caught.value.retryable is False
    assert "127.0.0.1 is in 127.0.0.0/8" in caught.value.message
    assert "JOBLINE_HTTP_ALLOW_NETWORKS" in caught.value.message
    assert server.hits.paths == []


def test_a_name_that_resolves_to_loopback_is_refused_on_its_address(
    server: Server,
) -> None:
    # "localhost" passes any check of the URL's text; the address it resolves to does not
    with pytest.raises(EgressRefused, match=r"127\.0\.0\.1 is in 127\.0\.0\.0/8"):
        _run(f"http://localhost:{server.port}/ok")
    assert server.hits.paths == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.170.2/v2/credentials",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://2130706433/",  # 127.0.0.1 written as one number
        "http://0x7f.1/",
    ],
)
def test_private_link_local_and_special_addresses_are_refused(url: str) -> None:
    with pytest.raises(EgressRefused):
        _run(url)


def test_an_allow_listed_network_is_reachable(server: Server) -> None:
    assert _run(f"{server.url}/ok", LOOPBACK)["status"] == 200
    assert server.hits.paths == ["/ok"]


def test_redirects_are_not_followed(server: Server) -> None:
    # Given a server (allow-listed) that redirects
    with pytest.raises(HttpRedirectNotFollowed) as caught:
        _run(f"{server.url}/redirect", LOOPBACK)

    # Then the job fails at once and the redirect target is never asked
    assert caught.value.retryable is False
    assert "302" in caught.value.message
    assert server.hits.paths == ["/redirect"]


def test_the_lambda_runtime_api_is_refused_even_when_allow_listed(
    server: Server,
) -> None:
    policy = EgressPolicy(allow=LOOPBACK.allow, runtime_api=f"127.0.0.1:{server.port}")

    with pytest.raises(EgressRefused, match="Lambda runtime API"):
        _run(f"{server.url}/2018-06-01/runtime/invocation/next", policy)
    assert server.hits.paths == []


def test_the_deployment_settings_give_the_policy(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBLINE_HTTP_ALLOW_NETWORKS", "10.0.0.0/8, 127.0.0.0/8")
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    settings = Settings()  # type: ignore[call-arg]
    job_type = default_registry(settings).get("http.request")

    assert job_type.run({"url": f"{server.url}/ok"}, _context())["status"] == 200
    with pytest.raises(EgressRefused, match="Lambda runtime API"):
        job_type.run({"url": "http://127.0.0.1:9001/", "timeout_s": 1}, _context())


def test_a_refused_request_fails_the_job_at_once_with_the_reason() -> None:
    # Given a queued http.request job for the metadata endpoint, three attempts allowed
    service, _, _ = build_fake_service()
    job = service.submit(
        ANN,
        SubmitRequest(
            type="http.request",
            payload={"url": "http://169.254.169.254/latest/meta-data/"},
            max_attempts=3,
        ),
    ).job

    # When a worker runs it
    assert service.run(delivery_of(job)) is RunOutcome.DONE

    # Then it failed permanently after one attempt, saying why
    failed = service.get(ANN, job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error is not None and failed.error.type == "EgressRefused"
    assert "169.254.169.254 is in 169.254.0.0/16" in failed.error.message


# ------------------------------------------------------------------------- properties

DEFAULT = EgressPolicy()
IETF_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")
"""Deprecated (RFC 3879) and refused by the policy, though Python calls it global."""


@given(st.ip_addresses())
def test_an_address_in_a_denied_network_is_refused(address: Any) -> None:
    denied = any(address in network for network in DENIED_NETWORKS)
    if denied:
        assert DEFAULT.refusal(str(address), 80) is not None


@given(st.ip_addresses())
def test_a_global_address_is_allowed(address: Any) -> None:
    embedded = None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # all of these refused, unlike Python
    stricter = address in IETF_PROTOCOL_ASSIGNMENTS or address in SITE_LOCAL
    public = address.is_global and not address.is_multicast
    if embedded is not None:
        public = public and embedded.is_global and not embedded.is_multicast
    if public and not stricter:
        assert DEFAULT.refusal(str(address), 443) is None


@given(st.ip_addresses(v=4), st.integers(min_value=8, max_value=32))
def test_an_allow_listed_network_admits_every_address_in_it(
    address: ipaddress.IPv4Address, prefix: int
) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    policy = EgressPolicy(allow=(network,))
    assert policy.refusal(str(address), 80) is None
    assert policy.refusal(f"::ffff:{address}", 80) is None


@given(
    st.ip_addresses(v=4, network="127.0.0.0/8")
    | st.ip_addresses(v=4, network="10.0.0.0/8")
    | st.ip_addresses(v=4, network="169.254.0.0/16")
)
def test_private_ipv4_is_refused_however_it_is_written(address: Any) -> None:
    assert DEFAULT.refusal(str(address), 80) is not None
    assert DEFAULT.refusal(f"::ffff:{address}", 80) is not None
    assert DEFAULT.refusal(f"64:ff9b::{address}", 80) is not None
