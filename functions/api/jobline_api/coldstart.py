"""The API function's init phase, done once per execution environment: before the first request
and (with SnapStart) before the snapshot. See docs/benchmarks.md.

`initialize` builds the service (settings, botocore session and clients) and loads the cursor keys
(SSM Parameter Store in AWS), attaches the service to the app,
and sends one request through the app (FastAPI builds its per-route state on the first request it
routes). A restored snapshot renews what restored environments must not share in `after_restore`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from jobline.bootstrap import cursor_keys, dynamodb_client, get_service, reset

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
    calls SQS, the outbox sends), load the cursor keys (SSM: one call, here rather than in a
    request; a weak key stops the function here), and attach the service to the app."""
    get_service()
    dynamodb_client()
    cursor_keys()
    attach_environment(app)


def initialize(app: FastAPI, handler: LambdaHandler) -> None:
    """The init phase's work: `prepare`, then prime the request path with one /health request."""
    prepare(app)
    response = handler(PRIMING_EVENT, None)
    if response["statusCode"] != 200:
        raise RuntimeError(f"the app failed its priming request: {response!r}")


def after_restore(app: FastAPI) -> None:
    """SnapStart resumed this environment from a snapshot other environments resume from too:
    reseed `random` (retry jitter), drop the session (its credentials) and the clients (their
    connections) with the service, and build them again before the first request."""
    random.seed()
    reset()
    prepare(app)
