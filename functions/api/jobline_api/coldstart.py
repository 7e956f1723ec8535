"""The API function's init phase, done once per execution environment: before the first request
and (with SnapStart) before the snapshot. See docs/benchmarks.md.

`initialize` builds the service (settings, botocore session and clients), attaches it to the app
and sends one request through the app (FastAPI builds its per-route state on the first request it
routes). The cursor keys (SSM Parameter Store in AWS) are not read there: a request that lists
nothing never waits for them, and the first cursor signed or read loads them. With SnapStart,
`before_snapshot` loads them into the snapshot (once per published version), and `after_restore`
renews only what the environments restored from one snapshot must not share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from jobline.bootstrap import (
    cursor_keys,
    dynamodb_client,
    get_service,
    renew_after_restore,
)

from jobline_api.app import attach_environment

PRIMING_EVENT: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "GET /health",
    "rawPath": "/health",
    "rawQueryString": "",
    "headers": {"host": "init.jobline.invalid"},
    "requestContext": {
        "http": {
            "method": "GET",
            "path": "/health",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
        },
        "routeKey": "GET /health",
        "stage": "$default",
    },
    "isBase64Encoded": False,
}
"""GET /health, answered by the app itself (no AWS call): it primes the request path at init."""

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def prepare(app: FastAPI) -> None:
    """Build this environment's service (settings, session, the DynamoDB client: the API never
    calls SQS, the outbox sends) and attach it to the app. No SSM call: the cursor keys load on
    first use (`jobline.bootstrap.cursor_keys`)."""
    get_service()
    dynamodb_client()
    attach_environment(app)


def initialize(app: FastAPI, handler: LambdaHandler) -> None:
    """The init phase's work: `prepare`, then prime the request path with one /health request."""
    prepare(app)
    response = handler(PRIMING_EVENT, None)
    if response["statusCode"] != 200:
        raise RuntimeError(f"the app failed its priming request: {response!r}")


def before_snapshot() -> None:
    """SnapStart is about to snapshot this initialized environment (once per published version):
    load the cursor keys now, so that no restored environment reads SSM (a billed, decrypted
    read) and a weak key fails the version's publication rather than a request."""
    cursor_keys()


def after_restore() -> None:
    """SnapStart resumed this environment from a snapshot other environments resume from too:
    reseed the random sources and close the pooled connections (`renew_after_restore`). The
    settings, session, clients, service, app and cursor keys of the snapshot are kept."""
    renew_after_restore()
