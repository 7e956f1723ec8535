"""A moto server in its own process on a free loopback port, with template.yaml's resources."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from jobline_local.endpoint import endpoint_environment, local_client
from jobline_local.template import (
    Provisioned,
    function_environment,
    load_template,
    provision,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
LANE_QUEUES = ("JobsQueue", "LongJobsQueue")
"""The lanes' jobs queues (template logical ids), default lane first."""

REGION = "us-east-1"


CURSOR_PARAMETER = "/jobline-bench/cursor-secret"


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class MotoServer:
    """`python -m moto.server` as a child process; `provision()` builds the template's resources."""

    prefix: str = "jobline-bench"
    process: subprocess.Popen[bytes] | None = None
    endpoint: str = ""
    provisioned: Provisioned | None = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto server did not start") from None
                time.sleep(0.1)
        self.provision()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def reset(self) -> None:
        """Forget every resource and item (moto's reset API), then build the template's again."""
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        self.provision()

    def provision(self) -> None:
        self.provisioned = provision(
            self.client("dynamodb"), self.client("sqs"), prefix=self.prefix
        )
        # The API function's cursor key, as deployed: a SecureString it reads at init.
        self.client("ssm").put_parameter(
            Name=CURSOR_PARAMETER,
            Value=secrets.token_urlsafe(32),
            Type="SecureString",
            Overwrite=True,
        )

    def client(self, service: str, max_pool_connections: int = 10) -> Any:
        """A plain boto3 client on the server (the bench's own, not the functions')."""
        return local_client(
            service, self.endpoint, REGION, max_pool_connections=max_pool_connections
        )

    @property
    def table(self) -> str:
        assert self.provisioned is not None
        return self.provisioned.tables["JobsTable"]

    @property
    def queue_url(self) -> str:
        assert self.provisioned is not None
        return self.provisioned.queue_urls["JobsQueue"]

    @property
    def queue_arn(self) -> str:
        assert self.provisioned is not None
        return self.provisioned.queue_arns["JobsQueue"]

    @property
    def lane_queues(self) -> dict[str, tuple[str, str]]:
        """Every lane's jobs queue (logical id -> URL and ARN): the outbox sends a job to the one
        its type's `timeout_s` picks (`jobline.lanes`)."""
        assert self.provisioned is not None
        return {
            name: (self.provisioned.queue_urls[name], self.provisioned.queue_arns[name])
            for name in LANE_QUEUES
            if name in self.provisioned.queue_urls
        }

    def function_env(self, function: str, code_paths: list[Path]) -> dict[str, str]:
        """The environment Lambda would give `function` (template variables resolved to this
        server's resources), with only the layer and the function's code on the path."""
        assert self.provisioned is not None
        env = function_environment(load_template(), self.provisioned, function)
        env.update(endpoint_environment(self.endpoint, REGION))
        env["AWS_LAMBDA_FUNCTION_NAME"] = function
        if function == "ApiFunction":  # the template names the stack's parameter (!Sub)
            env["JOBLINE_CURSOR_SECRET_PARAMETER"] = CURSOR_PARAMETER
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "on-demand"
        env["PYTHONPATH"] = os.pathsep.join(str(path) for path in code_paths)
        env["PATH"] = os.environ.get("PATH", "")
        return env
