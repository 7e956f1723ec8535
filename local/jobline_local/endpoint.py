"""The local AWS endpoint (a moto server) and what talks to it, shared by `make run`, `make bench`,
`make redrive --local` and the tests: the server, clients with dummy credentials, and the
environment that points a function at it."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

DUMMY_CREDENTIAL = "jobline-local"
"""moto accepts any credentials; these make a local run recognisable in its requests."""


def local_client(
    service: str, endpoint: str, region: str, *, max_pool_connections: int = 10
) -> Any:
    """A boto3 client of `service` on the local endpoint (the caller's own, not the functions')."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=DUMMY_CREDENTIAL,
        aws_secret_access_key=DUMMY_CREDENTIAL,
        config=Config(
            max_pool_connections=max_pool_connections,
            # botocore >= 1.44 would send DynamoDB Streams to an account-id endpoint that moto
            # does not route; a local endpoint has no such thing anyway.
            account_id_endpoint_mode="disabled",
        ),
    )


def endpoint_environment(endpoint: str, region: str) -> dict[str, str]:
    """What points a function's clients at the local endpoint, as the Lambda runtime's variables
    would point them at AWS: the standard endpoint variable, credentials, the region."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIAL,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


class _OneAtATime:
    """A WSGI app that serves one DynamoDB request at a time (the others, e.g. SQS long polls
    that wait for messages, run alongside)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return list(self._app(environ, start_response))
        with self._lock:
            # Read the whole answer inside the lock: the write happens while it is produced.
            return list(self._app(environ, start_response))


class SerializedMotoServer(ThreadedMotoServer):
    """moto's threaded server, answering one request at a time.

    moto evaluates a condition and applies a write in separate Python steps, so two concurrent
    conditional writes to one item can both win under a threaded server (measured: about a third
    of two-thread claim races). DynamoDB serializes the writes to an item; this server serializes
    every DynamoDB request, so what a local run or a test finds about conditions is Jobline's,
    not moto's.
    """

    def _server_entry(self) -> None:
        app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address,
            self._port,
            app,
            True,
            request_handler=MotoRequestHandler,
        )
        self._server_ready_event.set()
        self._server.serve_forever()
