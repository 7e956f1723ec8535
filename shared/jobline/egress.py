"""Where job handlers may connect: the address policy, and a urllib opener that enforces it on the
address each connection actually uses.

By default a handler may reach public addresses only: loopback, link-local (cloud metadata at
169.254.169.254 included), private (RFC 1918, fc00::/7), carrier-grade NAT, multicast, unspecified,
reserved and documentation ranges are refused, and so is the Lambda runtime API whatever the
allow-list says. A deployment that wants internal targets names them (`JOBLINE_HTTP_ALLOW_NETWORKS`).

The check runs at connect time on every address the host name resolved to, so a name that resolves
to a private address (DNS rebinding included) is refused as the address itself would be; redirects
are not followed (each would be a new request the caller did not name); proxies from the
environment are not used (the check would see the proxy, not the target).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.request
from dataclasses import dataclass
from functools import partial
from typing import Any

from jobline.errors import PermanentJobError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DENIED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 (unspecified)
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT (shared address space)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local: instance metadata, the ECS/EKS credential endpoints
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local (private), the EC2 IPv6 metadata endpoint fd00:ec2::254
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
"""Refused unless allow-listed."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class EgressRefused(PermanentJobError):
    """A handler tried to connect where the deployment's egress policy does not allow."""


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses handlers may connect to."""

    allow: tuple[IPNetwork, ...] = ()
    """Networks reachable even though they are in `DENIED_NETWORKS` (internal targets)."""
    runtime_api: str | None = None
    """`host:port` of the Lambda runtime API (AWS_LAMBDA_RUNTIME_API): never reachable."""

    def refusal(self, address: str, port: int) -> str | None:
        """Why a connection to `address`:`port` is refused, or None when it is allowed."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        if self.runtime_api is not None and self._is_runtime_api(ip, port):
            return "it is the Lambda runtime API"
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(ip)
            if embedded is not None:
                candidates.append(embedded)
        for candidate in candidates:
            if any(candidate in network for network in self.allow):
                continue
            for network in DENIED_NETWORKS:
                if candidate in network:
                    return f"{candidate} is in {network}, which is not allow-listed"
        return None

    def _is_runtime_api(self, ip: IPAddress, port: int) -> bool:
        host, _, port_text = (self.runtime_api or "").rpartition(":")
        try:
            runtime = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return ip == runtime and port_text == str(port)


def _connect(
    policy: EgressPolicy,
    address: tuple[str, int],
    timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """`socket.create_connection`, trying only the resolved addresses the policy allows."""
    host, port = address
    refusals: list[str] = []
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(
        host, port, 0, socket.SOCK_STREAM
    ):
        refusal = policy.refusal(str(sockaddr[0]), port)
        if refusal is not None:
            refusals.append(refusal)
            continue
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    if error is not None:
        raise error
    raise EgressRefused(
        f"connection to {host}:{port} refused by the egress policy: "
        + "; ".join(dict.fromkeys(refusals))
        + " (JOBLINE_HTTP_ALLOW_NETWORKS lists allowed internal networks)"
    )


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, policy: EgressPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = partial(_connect, policy)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, policy: EgressPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = partial(_connect, policy)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__()
        self._policy = policy

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(_GuardedHTTPConnection, policy=self._policy), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__()
        self._policy = policy

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            partial(_GuardedHTTPSConnection, policy=self._policy),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx answer is returned to the caller as an `HTTPError`, never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def guarded_opener(policy: EgressPolicy) -> urllib.request.OpenerDirector:
    """An opener whose every connection obeys `policy`, that follows no redirect and uses no proxy."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _GuardedHTTPHandler(policy),
        _GuardedHTTPSHandler(policy),
        _NoRedirects(),
    )
