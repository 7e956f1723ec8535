"""Settings: the only module that reads the environment."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every Jobline setting, read from `JOBLINE_*` variables (and the standard AWS ones)."""

    model_config = SettingsConfigDict(
        env_prefix="JOBLINE_", extra="ignore", frozen=True
    )

    table_name: str = Field(min_length=3, description="DynamoDB table holding jobs")
    queue_url: str = Field(min_length=1, description="URL of the jobs SQS queue")
    retention_days: int = Field(
        default=30, ge=1, le=3650, description="keep finished jobs this long"
    )
    allow_dev_identity: bool = Field(
        default=False,
        description="accept the X-Dev-User header as the caller (local runs only)",
    )
    cursor_secret: SecretStr = Field(
        default=SecretStr("jobline-local-cursor-key-change-me"),
        description="HMAC key that signs list cursors",
    )
    max_payload_bytes: int = Field(default=64 * 1024, ge=1, le=256 * 1024)
    max_result_bytes: int = Field(default=128 * 1024, ge=1, le=300 * 1024)
    worker_concurrency: int = Field(
        default=10, ge=1, le=100, description="records run at once per batch"
    )
    deadline_margin_ms: int = Field(
        default=2000, ge=0, description="stop work this long before the Lambda deadline"
    )
    log_level: str = Field(default="INFO")

    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL"),
        description="standard AWS_ENDPOINT_URL: point every client at a local emulator",
    )
    function_name: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_LAMBDA_FUNCTION_NAME")
    )

    @field_validator("aws_endpoint_url")
    @classmethod
    def _blank_endpoint_is_unset(cls, value: str | None) -> str | None:
        """An empty AWS_ENDPOINT_URL (as the template declares it) means "the real AWS"."""
        return value or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this execution environment, validated once on first use.

    A missing required variable fails here with pydantic's message naming it
    (e.g. `table_name  Field required` for JOBLINE_TABLE_NAME).
    """
    return Settings()  # type: ignore[call-arg]
