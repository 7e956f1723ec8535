"""Settings of the local stack (`make run`), read from `JOBLINE_LOCAL_*` variables."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalSettings(BaseSettings):
    """Where `make run` listens and how its poller behaves; port 0 picks a free port."""

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
