"""Settings of the local stack (`make run`), read from `JOBLINE_LOCAL_*` variables."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalSettings(BaseSettings):
    """Where `make run` listens, how its pollers behave and what it keeps; port 0 picks a free
    port."""

    model_config = SettingsConfigDict(
        env_prefix="JOBLINE_LOCAL_", extra="ignore", frozen=True, populate_by_name=True
    )

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="interface of the API and the moto server (keep it on loopback)",
    )
    api_port: int = Field(default=8000, ge=0, le=65535, description="API port")
    moto_port: int = Field(
        default=5055, ge=0, le=65535, description="moto server (AWS endpoint) port"
    )
    moto_host: str | None = Field(
        default=None,
        description="interface of the moto server when it is not `host`: 0.0.0.0 lets the "
        "containers of `sam local invoke` reach it on Linux (docs/local-development.md). Off "
        "by default: moto asks for no credentials, so whoever reaches it reads and changes "
        "every job, and on 0.0.0.0 that is anyone on the machine's networks",
    )
    prefix: str = Field(
        default="jobline-local",
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="prefix of the table and queue names",
    )
    poll_wait_seconds: int = Field(
        default=1,
        ge=0,
        le=20,
        description="WaitTimeSeconds of the poller's ReceiveMessage (long polling)",
    )
    sqs_concurrency: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="invocations at once per SQS event source (Lambda scales a queue's pollers "
        "out), never more than the event source's ScalingConfig.MaximumConcurrency",
    )
    state_file: Path | None = Field(
        default=None,
        description="where a clean stop saves the jobs (and the messages no job recreates) "
        "and the next start restores them (`make run`: .jobline-local/state.json); unset or "
        "empty: nothing is kept",
    )
    fresh: bool = Field(
        default=False,
        description="start clean: discard the saved state (`make run FRESH=1`)",
    )
    shutdown_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="how long stop() waits for the API and each poller",
    )
    log_level: str = Field(
        default="INFO",
        pattern=r"^(?i:DEBUG|INFO|WARNING|ERROR|CRITICAL)$",
        validation_alias=AliasChoices("JOBLINE_LOG_LEVEL"),
        description="log level of the stack and the functions (the functions' JOBLINE_LOG_LEVEL)",
    )
    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="region of the local resources (standard AWS_REGION)",
    )

    @field_validator("moto_host", "state_file", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An empty variable (`JOBLINE_LOCAL_STATE_FILE=`) means the setting is off."""
        return None if value == "" else value

    @property
    def moto_bind_host(self) -> str:
        """The interface the moto server listens on."""
        return self.moto_host or self.host

    @property
    def moto_client_host(self) -> str:
        """The host this machine's own clients reach the moto server at: loopback when it
        listens on every interface (0.0.0.0 or ::)."""
        host = self.moto_bind_host
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host
        if address.is_unspecified:
            return "::1" if address.version == 6 else "127.0.0.1"
        return host
