"""The whole service on one machine: moto server, template resources, the API, the SQS pollers.

`LocalStack(settings).start()` (or `with LocalStack(settings) as stack:`) brings up, in order:
1. a moto server on loopback (the AWS endpoint of every client);
2. the table and queues of template.yaml, created from the template's own properties;
3. the functions' environment (the template's variables, resolved to the local resources, plus
   AWS_ENDPOINT_URL, dummy credentials and the development identity), then `bootstrap.reset()`;
4. the saved state, when `state_file` names one (`jobline_local.state`; `fresh` discards it);
5. the API app under uvicorn, in a thread;
6. the event source mappings of the template, invoking the handlers it names: per SQS trigger,
   up to `sqs_concurrency` poller threads (never more than its MaximumConcurrency), per stream
   one thread (a shard's batches go in order).
`stop()` takes them down in reverse, saving the state (or counting what is dropped) before the
moto server goes. Port 0 picks a free port (tests).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn
from jobline import bootstrap
from jobline.logging import configure, get_logger

from jobline_local import state
from jobline_local.access_log import AccessLog
from jobline_local.endpoint import (
    SerializedMotoServer,
    endpoint_environment,
    local_client,
)
from jobline_local.poller import SqsPoller, import_handler, mapping_concurrency
from jobline_local.settings import LocalSettings
from jobline_local.snapshot import StateError
from jobline_local.state import StateSummary
from jobline_local.streams import StreamPoller
from jobline_local.template import (
    Provisioned,
    function_environment,
    load_template,
    provision,
    resources_of_type,
    sqs_triggers,
    stream_triggers,
)

log = get_logger(__name__)

API_FUNCTION = "ApiFunction"
"""The template function the HTTP API stands for (its name goes into the request log context)."""

STARTUP_TIMEOUT_S = 15.0

SetEnv = Callable[[str, str], None]


class LocalStackError(RuntimeError):
    """The local stack could not start (a port in use, the API failing its startup)."""


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bind(host: str, port: int, port_setting: str, host_setting: str) -> socket.socket:
    """A listening socket, or a LocalStackError naming the setting to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = (
            f"set {port_setting} to another port (0 picks a free one)"
            if exc.errno == errno.EADDRINUSE
            else f"set {host_setting} to an address of this machine"
        )
        raise LocalStackError(
            f"cannot listen on {host}:{port}: {exc.strerror}; {hint}"
        ) from exc
    sock.listen(128)
    return sock


class LocalStack:
    """moto server + template resources + API + pollers, started and stopped as one."""

    def __init__(
        self,
        settings: LocalSettings | None = None,
        *,
        set_env: SetEnv | None = None,
        template: dict[str, Any] | None = None,
    ) -> None:
        """`set_env` writes one environment variable (default `os.environ`; tests pass monkeypatch)."""
        self.settings = settings or LocalSettings()
        self.template = template or load_template()
        self._set_env: SetEnv = set_env or os.environ.__setitem__
        self._stop = threading.Event()
        self._moto: SerializedMotoServer | None = None
        self._api: uvicorn.Server | None = None
        self._api_thread: threading.Thread | None = None
        self._api_socket: socket.socket | None = None
        self.pollers: list[SqsPoller | StreamPoller] = []
        self.aws_endpoint = ""
        self.api_url = ""
        self.provisioned = Provisioned(tables={}, queue_urls={}, queue_arns={})
        self.environment: dict[str, str] = {}
        self.dynamodb: Any = None
        self.sqs: Any = None
        self.s3: Any = None
        self.restored: StateSummary | None = None
        """What the start restored from `state_file` (None: nothing)."""
        self.kept: StateSummary | None = None
        """What the last stop saved to `state_file`, or dropped when there is none."""
        self._ready = False

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def table_name(self) -> str:
        """The jobs table: the functions' JOBLINE_TABLE_NAME."""
        return self.environment.get("JOBLINE_TABLE_NAME", "")

    @property
    def queue_url(self) -> str:
        """The jobs queue: the functions' JOBLINE_QUEUE_URL."""
        return self.environment.get("JOBLINE_QUEUE_URL", "")

    def start(self) -> None:
        """Bring everything up; on any failure, take down what started and re-raise."""
        configure(self.settings.log_level)
        self._stop.clear()
        self.restored = self.kept = None
        try:
            self._start_moto()
            self._provision()
            self._configure_environment()
            self._restore_state()
            self._start_api()
            self._start_pollers()
        except BaseException:
            self.stop()
            raise
        self._ready = True
        if self.settings.state_file is not None:
            # Restored (or discarded): from now on the state lives here until the next stop.
            try:
                self.settings.state_file.unlink(missing_ok=True)
            except OSError as exc:
                log.warning(
                    "local.state_not_removed",
                    path=str(self.settings.state_file),
                    error=str(exc),
                )

    def stop(self) -> bool:
        """Stop the API and the pollers, then the moto server; safe to call twice.

        False when the API or a poller (a batch still running) did not stop within
        `shutdown_timeout_seconds`: its thread is left behind.
        """
        timeout = self.settings.shutdown_timeout_seconds
        stopped = True
        self._stop.set()
        if self._api is not None:
            self._api.should_exit = True
        if self._api_thread is not None:
            self._api_thread.join(timeout)
            if self._api_thread.is_alive():
                stopped = False
                log.warning("local.api_still_running", timeout_s=timeout)
        for poller in self.pollers:
            if not poller.stop(timeout):
                stopped = False
                log.warning(
                    "local.poller_still_running",
                    function=poller.function_name,
                    timeout_s=timeout,
                )
        if self._api_socket is not None:
            self._api_socket.close()
        if self._moto is not None and self._ready:
            self.kept = state.keep(self.settings.state_file, self._state_resources())
        self._ready = False
        if self._moto is not None:
            self._moto.stop()
        was_running = self._moto is not None
        self._api = self._api_thread = self._api_socket = self._moto = None
        self.pollers = []
        bootstrap.reset()
        if was_running:
            log.info("local.stopped", clean=stopped)
        return stopped

    def _start_moto(self) -> None:
        host, port = self.settings.moto_bind_host, self.settings.moto_port
        host_setting = (
            "JOBLINE_LOCAL_MOTO_HOST"
            if self.settings.moto_host
            else "JOBLINE_LOCAL_HOST"
        )
        if port:  # fail fast: the moto thread would wait forever
            _bind(host, port, "JOBLINE_LOCAL_MOTO_PORT", host_setting).close()
        # Each moto request would otherwise be logged by werkzeug on stderr.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto = SerializedMotoServer(ip_address=host, port=port, verbose=False)
        moto.start()
        self._moto = moto
        _, bound_port = moto.get_host_and_port()
        client_host = _url_host(self.settings.moto_client_host)
        self.aws_endpoint = f"http://{client_host}:{bound_port}"

    def _provision(self) -> None:
        region = self.settings.aws_region
        self.dynamodb = local_client("dynamodb", self.aws_endpoint, region)
        self.sqs = local_client("sqs", self.aws_endpoint, region)
        self.s3 = local_client("s3", self.aws_endpoint, region)
        self.provisioned = provision(
            self.dynamodb,
            self.sqs,
            prefix=self.settings.prefix,
            template=self.template,
            s3=self.s3,
        )

    def _configure_environment(self) -> None:
        """The functions' environment: local resources always win, the user's own settings stay."""
        local_values = (
            set(self.provisioned.tables.values())
            | set(self.provisioned.queue_urls.values())
            | set(self.provisioned.buckets.values())
        )
        environment: dict[str, str] = {}
        for function in resources_of_type(self.template, "AWS::Serverless::Function"):
            for name, value in function_environment(
                self.template, self.provisioned, function
            ).items():
                if value in local_values or name not in os.environ:
                    environment[name] = value
        endpoint = endpoint_environment(self.aws_endpoint, self.settings.aws_region)
        if "AWS_REGION" in os.environ:  # the user's region stays
            del endpoint["AWS_REGION"], endpoint["AWS_DEFAULT_REGION"]
        environment.update(endpoint, JOBLINE_ALLOW_DEV_IDENTITY="true")
        for name, value in environment.items():
            self._set_env(name, value)
        self.environment = environment
        bootstrap.reset()

    def _start_api(self) -> None:
        from jobline_api.app import create_app  # after the environment is set

        sock = _bind(
            self.settings.host,
            self.settings.api_port,
            "JOBLINE_LOCAL_API_PORT",
            "JOBLINE_LOCAL_HOST",
        )
        self._api_socket = sock
        config = uvicorn.Config(
            AccessLog(create_app(allow_dev_identity=True), API_FUNCTION),
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=int(self.settings.shutdown_timeout_seconds),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="api", daemon=True
        )
        self._api, self._api_thread = server, thread
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise LocalStackError("the API failed to start (see the log above)")
            if time.monotonic() > deadline:
                raise LocalStackError(f"the API did not start in {STARTUP_TIMEOUT_S}s")
            time.sleep(0.01)
        host, port = sock.getsockname()[:2]
        self.api_url = f"http://{_url_host(host)}:{port}"

    def _start_pollers(self) -> None:
        pollers: list[SqsPoller | StreamPoller] = [
            SqsPoller(
                trigger,
                import_handler(trigger.handler),  # after the environment is set
                self.sqs,
                self.provisioned.queue_urls[trigger.queue],
                self.provisioned.queue_arns[trigger.queue],
                region=self.settings.aws_region,
                function_name=f"{self.settings.prefix}-{trigger.function}",
                wait_time_s=self.settings.poll_wait_seconds,
                concurrency=mapping_concurrency(trigger, self.settings.sqs_concurrency),
                stop_event=self._stop,
            )
            for trigger in sqs_triggers(self.template)
        ]
        streams = local_client(
            "dynamodbstreams", self.aws_endpoint, self.settings.aws_region
        )
        pollers += [
            StreamPoller(
                trigger,
                import_handler(trigger.handler),
                streams,
                self.provisioned.stream_arns[trigger.table],
                region=self.settings.aws_region,
                send_failure=self._on_failure_sender(trigger.on_failure_queue),
                function_name=f"{self.settings.prefix}-{trigger.function}",
                stop_event=self._stop,
            )
            for trigger in stream_triggers(self.template)
        ]
        for poller in pollers:
            self.pollers.append(poller)
            poller.start()

    def _state_resources(self) -> state.Resources:
        def logical_id(names: dict[str, str], name: str) -> str:
            return next(logical for logical, value in names.items() if value == name)

        return state.Resources(
            dynamodb=self.dynamodb,
            sqs=self.sqs,
            template=self.template,
            provisioned=self.provisioned,
            jobs_table=logical_id(self.provisioned.tables, self.table_name),
            jobs_queue=logical_id(self.provisioned.queue_urls, self.queue_url),
            s3=self.s3,
        )

    def _restore_state(self) -> None:
        """Put back what the last clean stop saved (unless `fresh`)."""
        path = self.settings.state_file
        if path is None or self.settings.fresh:
            if path is not None and path.exists():
                log.info("local.state_discarded", path=str(path))
            return
        try:
            self.restored = state.restore_saved(path, self._state_resources())
        except StateError as exc:
            raise LocalStackError(
                f"{exc}: move it away, or start clean with JOBLINE_LOCAL_FRESH=true "
                "(make run FRESH=1)"
            ) from exc

    def _on_failure_sender(
        self, queue: str | None
    ) -> Callable[[dict[str, Any]], None] | None:
        """What sends a stream mapping's given-up batch to its on-failure destination."""
        if queue is None:
            return None
        url = self.provisioned.queue_urls[queue]
        return lambda record: self.sqs.send_message(
            QueueUrl=url, MessageBody=json.dumps(record)
        )

    def describe(self) -> dict[str, Any]:
        """Where everything is, for the startup line."""
        return {
            "api_url": self.api_url,
            "aws_endpoint": self.aws_endpoint,
            "table": self.table_name,
            "queue_url": self.queue_url,
            "tables": dict(self.provisioned.tables),
            "queues": dict(self.provisioned.queue_urls),
            "pollers": [
                {
                    "function": poller.function_name,
                    "source": poller.queue_url
                    if isinstance(poller, SqsPoller)
                    else poller.stream_arn,
                    "batch_size": poller.trigger.batch_size,
                    "concurrency": poller.concurrency,
                }
                for poller in self.pollers
            ],
            "state_file": str(self.settings.state_file or ""),
            "restored": self.restored.jobs if self.restored else None,
            "try": (
                f"curl -s -X POST {self.api_url}/jobs -H 'X-Dev-User: alice'"
                " -H 'content-type: application/json'"
                ' -d \'{"type":"echo","payload":{"hello":"world"}}\''
            ),
        }
