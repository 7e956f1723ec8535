"""Settings: the only module that reads the environment."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobline import limits
from jobline.lanes import Lanes


def _comma_separated(value: Any) -> Any:
    """`10.1.0.0/16, fd00:1::/64` or `X-Token, X-Secret` (commas or spaces) as a list."""
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return value


HeaderNames = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_separated)]
"""Header names, comma- or space-separated in the environment."""
ModuleNames = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_separated)]
"""Python module names, comma- or space-separated in the environment."""
JOB_TYPE_MODULES_DESCRIPTION = (
    "modules (comma-separated) whose JOB_TYPES are job types of this deployment, besides "
    "those of the installed `jobline.job_types` entry points (jobline.discovery)"
)
REDACT_HEADERS_DESCRIPTION = (
    "header names (comma-separated) redacted like Authorization, Cookie and X-Api-Key in "
    "logs, job errors and http.request results"
)


class Settings(BaseSettings):
    """Every Jobline setting, read from `JOBLINE_*` variables (and the standard AWS ones)."""

    model_config = SettingsConfigDict(
        env_prefix="JOBLINE_", extra="ignore", frozen=True
    )

    table_name: str = Field(min_length=3, description="DynamoDB table holding jobs")
    queue_url: str = Field(
        min_length=1, description="URL of the jobs SQS queue (the default lane's)"
    )
    long_queue_url: str | None = Field(
        default=None,
        description="URL of the long lane's jobs queue (the long worker's; the template sets "
        "it); unset: the long lane's messages go to the jobs queue (one worker for all)",
    )
    retention_days: int = Field(
        default=limits.RETENTION_DAYS,
        ge=1,
        le=limits.MAX_RETENTION_DAYS,
        description="keep finished jobs this long",
    )
    allow_dev_identity: bool = Field(
        default=False,
        description="accept the X-Dev-User header as the caller (local runs only)",
    )
    cursor_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key that signs list cursors (local runs; in AWS the key comes "
        "from cursor_secret_parameter). Unset: a public development key, refused on Lambda",
    )
    cursor_secret_previous: SecretStr | None = Field(
        default=None,
        description="a previous key still accepted when reading cursors (rotation)",
    )
    cursor_secret_parameter: str | None = Field(
        default=None,
        description="name of the SSM SecureString parameter holding the cursor key",
    )
    cursor_rotation_grace_s: int = Field(
        default=86_400,
        ge=0,
        le=30 * 86_400,
        description="after the parameter is overwritten, its previous version is accepted "
        "for reading this long",
    )
    max_payload_bytes: int = Field(
        default=limits.MAX_PAYLOAD_BYTES,
        ge=1,
        le=limits.MAX_PAYLOAD_BYTES_BOUND,
        description="largest payload (canonical JSON) a submit may carry; over 64 KiB it is "
        "kept in the data bucket",
    )
    max_result_bytes: int = Field(
        default=limits.MAX_RESULT_BYTES,
        ge=1,
        le=limits.MAX_RESULT_BYTES_BOUND,
        description="largest result (canonical JSON) a handler may return; over 64 KiB it is "
        "kept in the data bucket",
    )
    data_bucket: str | None = Field(
        default=None,
        description="S3 bucket keeping payloads and results over 64 KiB (the claim check); "
        "unset: those are refused",
    )
    data_expiration_days: int = Field(
        default=limits.RETENTION_DAYS + limits.DATA_EXPIRY_MARGIN_DAYS,
        ge=1,
        le=limits.MAX_RETENTION_DAYS + limits.DATA_EXPIRY_MARGIN_DAYS,
        description="days the data bucket's lifecycle keeps an object; at least "
        f"retention_days + {limits.DATA_EXPIRY_MARGIN_DAYS}",
    )
    worker_concurrency: int = Field(
        default=10, ge=1, le=100, description="records run at once per batch"
    )
    deadline_margin_ms: int = Field(
        default=limits.DEADLINE_MARGIN_MS,
        ge=0,
        description="stop handlers this long before the Lambda deadline: room for the outcome "
        "write even when every AWS call of it needs all its tries (see aws_call_budget_s)",
    )
    aws_connect_timeout_s: float = Field(default=1.0, gt=0, le=60)
    aws_read_timeout_s: float = Field(
        default=1.5,
        gt=0,
        le=60,
        description="per try; DynamoDB and SQS answer in milliseconds",
    )
    aws_max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="tries of one AWS call (botocore standard mode)",
    )
    retry_base_s: float = Field(
        default=limits.RETRY_BASE_S,
        gt=0,
        le=limits.MAX_RETRY_DELAY_S,
        description="backoff base: attempt n waits up to base * 2**(n-1)",
    )
    retry_cap_s: float = Field(
        default=limits.RETRY_CAP_S,
        gt=0,
        le=limits.MAX_RETRY_DELAY_S,
        description="backoff cap (ChangeMessageVisibility max 12 h)",
    )
    progress_interval_s: float = Field(
        default=limits.PROGRESS_INTERVAL_S,
        ge=0.1,
        le=60,
        description="at most one progress write / cancel read per job per interval",
    )
    ingest_default_owner: str = Field(
        default="ingest",
        min_length=1,
        description="owner of ingest submissions that name none",
    )
    http_allow_networks: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = Field(
        default=(),
        description="CIDRs (comma-separated) http.request may reach although they are "
        "private, loopback or link-local",
    )
    redact_headers: HeaderNames = Field(
        default=(), description=REDACT_HEADERS_DESCRIPTION
    )
    job_type_modules: ModuleNames = Field(
        default=(), description=JOB_TYPE_MODULES_DESCRIPTION
    )

    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL"),
        description="standard AWS_ENDPOINT_URL: point every client at a local emulator",
    )
    lambda_endpoint_url: str | None = Field(
        default=None,
        description="where the worker invokes job types' target functions, instead of "
        "AWS_ENDPOINT_URL or Lambda itself: a local stand-in of Lambda's Invoke API "
        "(`sam local start-lambda`, the tests' stand-in)",
    )
    function_name: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_LAMBDA_FUNCTION_NAME")
    )
    lambda_runtime_api: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_LAMBDA_RUNTIME_API"),
        description="host:port of the Lambda runtime API, which handlers never reach",
    )

    @property
    def aws_call_budget_s(self) -> float:
        """The longest one AWS call can take: every try timing out (connect + read), plus
        botocore's standard-mode backoff between tries (at most 1, 2, 4... seconds). Each
        function's timeout leaves room for it (tests/unit/test_template.py checks)."""
        tries = self.aws_max_attempts
        backoff = sum(min(2.0**attempt, 20.0) for attempt in range(tries - 1))
        return tries * (self.aws_connect_timeout_s + self.aws_read_timeout_s) + backoff

    @field_validator("http_allow_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        return _comma_separated(value)

    @field_validator(
        "aws_endpoint_url",
        "lambda_endpoint_url",
        "cursor_secret_parameter",
        "long_queue_url",
        "data_bucket",
    )
    @classmethod
    def _blank_endpoint_is_unset(cls, value: str | None) -> str | None:
        """An empty AWS_ENDPOINT_URL (as the template declares it) means "the real AWS"; an
        empty parameter or bucket name, none."""
        return value or None

    @model_validator(mode="after")
    def _data_outlives_its_jobs(self) -> Settings:
        """The data bucket must keep a job's payload and result as long as the job is kept
        (`limits.DATA_EXPIRY_MARGIN_DAYS`): a deployment that would serve a job whose data is
        gone is refused."""
        least = self.retention_days + limits.DATA_EXPIRY_MARGIN_DAYS
        if self.data_bucket is not None and self.data_expiration_days < least:
            raise ValueError(
                f"data_expiration_days ({self.data_expiration_days}) must be at least "
                f"retention_days + {limits.DATA_EXPIRY_MARGIN_DAYS} ({least}): the template's "
                "DataExpirationDays and RetentionDays"
            )
        return self

    @field_validator("cursor_secret", "cursor_secret_previous")
    @classmethod
    def _blank_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty key (the template declares JOBLINE_CURSOR_SECRET empty) is no key."""
        return value if value is not None and value.get_secret_value() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this execution environment, validated once on first use.

    A missing required variable fails here with pydantic's message naming it
    (e.g. `table_name  Field required` for JOBLINE_TABLE_NAME).
    """
    return Settings()  # type: ignore[call-arg]


class JobTypeSettings(BaseSettings):
    """Where the job types come from, read on its own: tools (`make openapi`) and the bench build
    a registry without the other settings' required variables."""

    model_config = SettingsConfigDict(
        env_prefix="JOBLINE_", extra="ignore", frozen=True
    )

    job_type_modules: ModuleNames = Field(
        default=(), description=JOB_TYPE_MODULES_DESCRIPTION
    )
    worker_timeout_s: int = Field(
        default=limits.WORKER_TIMEOUT_S,
        ge=1,
        le=limits.LAMBDA_MAX_TIMEOUT_S,
        description="the worker function's Timeout (the default lane; the template sets it)",
    )
    long_worker_timeout_s: int | None = Field(
        default=limits.LONG_WORKER_TIMEOUT_S,
        ge=1,
        le=limits.LAMBDA_MAX_TIMEOUT_S,
        description="the long worker function's Timeout (the long lane; the template sets "
        "it); empty: no long lane, and a type whose attempts need it is refused",
    )

    @field_validator("long_worker_timeout_s", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    deadline_margin_ms: int = Field(default=limits.DEADLINE_MARGIN_MS, ge=0)

    @property
    def lanes(self) -> Lanes:
        """The deployment's lanes (`jobline.lanes`)."""
        return Lanes(
            worker_timeout_s=self.worker_timeout_s,
            long_worker_timeout_s=self.long_worker_timeout_s,
            margin_s=self.deadline_margin_ms / 1000,
        )


def job_type_settings() -> JobTypeSettings:
    """The job-type settings, read from the environment now (not cached: read once per
    registry, which the service caches)."""
    return JobTypeSettings()


class _LambdaRuntime(BaseSettings):
    """What the Lambda runtime tells the function about itself and its initialization."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    aws_lambda_initialization_type: str | None = None
    aws_lambda_function_name: str | None = None


def lambda_initialization_type() -> str | None:
    """How Lambda is initializing this execution environment: `on-demand`,
    `provisioned-concurrency` or `snap-start` (AWS_LAMBDA_INITIALIZATION_TYPE); None outside Lambda.

    Read on its own, without the other settings: it decides whether a handler module builds the
    service while it is imported (the init phase), which tests and local runs do not want.
    """
    return _LambdaRuntime().aws_lambda_initialization_type or None


def on_lambda() -> bool:
    """Whether this process is a Lambda function (AWS_LAMBDA_FUNCTION_NAME is set, as on Lambda
    and under `sam local invoke`), read on its own: the worker's init refuses job types whose
    target is a local callable there."""
    return bool(_LambdaRuntime().aws_lambda_function_name)


class LogSettings(BaseSettings):
    """How log lines are rendered, read on its own: `jobline.logging.configure()` runs while every
    function is imported, before the other settings are (and without their required variables)."""

    model_config = SettingsConfigDict(
        env_prefix="JOBLINE_", extra="ignore", frozen=True
    )

    log_format: Literal["json", "console", "auto"] = Field(
        default="auto",
        description="json, console (human-readable) or auto: console on a terminal, else JSON",
    )
    function_name: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_LAMBDA_FUNCTION_NAME")
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = Field(
        default=None,
        description="the lowest level logged (JOBLINE_LOG_LEVEL); unset: Lambda's "
        "application log level (AWS_LAMBDA_LOG_LEVEL, the template's ApplicationLogLevel), "
        "else INFO",
    )
    lambda_log_level: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_LAMBDA_LOG_LEVEL")
    )
    redact_headers: HeaderNames = Field(
        default=(), description=REDACT_HEADERS_DESCRIPTION
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def in_lambda(self) -> bool:
        """Whether this process is a Lambda function (the runtime sets AWS_LAMBDA_FUNCTION_NAME)."""
        return bool(self.function_name)

    @property
    def level(self) -> str:
        """The level to log at: JOBLINE_LOG_LEVEL, else Lambda's application log level (its
        TRACE is DEBUG here, FATAL is CRITICAL), else INFO."""
        if self.log_level is not None:
            return self.log_level
        lambda_level = (self.lambda_log_level or "").strip().upper()
        return {"TRACE": "DEBUG", "FATAL": "CRITICAL", "WARN": "WARNING"}.get(
            lambda_level,
            lambda_level
            if lambda_level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
            else "INFO",
        )


def log_settings() -> LogSettings:
    """The log settings, read from the environment now (not cached: `configure` reads them once)."""
    return LogSettings()
