"""The local AWS endpoint (a moto server) and what talks to it, shared by `make run`, `make bench`,
`make redrive --local` and the tests: the server, clients with dummy credentials, and the
environment that points a function at it."""

from __future__ import annotations

import threading
from collections import Counter
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
            # nor per-bucket host names
            s3={"addressing_style": "path"},
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


_TARGET_SERVICES = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs"}


def request_kind(environ: dict[str, Any]) -> str:
    """`service.Operation` of an AWS JSON request from its `X-Amz-Target` header (e.g.
    `DynamoDB_20120810.PutItem` -> `dynamodb.PutItem`), else `METHOD /path`."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    prefix, _, operation = target.partition(".")
    if operation:
        return f"{_TARGET_SERVICES.get(prefix, prefix)}.{operation}"
    return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"


class _QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without werkzeug's line per request on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing."""


class SerializedMotoServer(ThreadedMotoServer):
    """moto's threaded server (on loopback unless told otherwise), answering one DynamoDB request
    at a time and one SQS request at a time (long polls aside), and counting the requests.

    moto evaluates a condition and applies a write in separate Python steps, so two concurrent
    conditional writes to one item can both win under a threaded server. DynamoDB serializes the
    writes to an item; this server serializes every DynamoDB request (stricter than per item, and
    no outcome depends on it), so what a local run or a test finds about conditions is Jobline's,
    not moto's. SQS likewise: moto's DeleteMessage rebuilds a queue's message list, and a
    SendMessage appending to it meanwhile would be lost, so SQS requests take turns too, except
    ReceiveMessage, which may wait (long polling) for a message that another request sends (the
    local event source mappings take turns at receiving on their own: `jobline_local.poller`).

    `requests` counts the requests that reached the server, per `request_kind`. Unless `verbose`,
    werkzeug logs no line per request. Port 0 picks a free port (`endpoint` tells which).
    """

    def __init__(
        self, ip_address: str = "127.0.0.1", port: int = 0, verbose: bool = False
    ) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=verbose)
        self._serial = {"dynamodb": threading.Lock(), "sqs": threading.Lock()}
        self._count_lock = threading.Lock()
        self.requests: Counter[str] = Counter()

    @property
    def endpoint(self) -> str:
        """The server's URL, for `endpoint_url` (after `start()`)."""
        host, port = self.get_host_and_port()
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def _serialized(self, app: Any) -> Any:
        def serialized(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            kind = request_kind(environ)
            with self._count_lock:
                self.requests[kind] += 1
            service = kind.partition(".")[0]
            if service not in self._serial or kind == "sqs.ReceiveMessage":
                return list(app(environ, start_response))
            with self._serial[service]:
                result = app(environ, start_response)
                try:
                    return list(result)  # the whole body, produced under the lock
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()

        return serialized

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._ip_address,
            self._port,
            self._serialized(app),
            threaded=True,
            request_handler=MotoRequestHandler
            if self._verbose
            else _QuietRequestHandler,
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    def __enter__(self) -> SerializedMotoServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
