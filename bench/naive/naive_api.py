"""The straightforward implementation of our stack, kept as the cold-start reference (issue 4).

FastAPI + Mangum + aioboto3 + structlog + pydantic-settings: one async route reading DynamoDB
with an aioboto3 client created once (on first use, then reused by every invocation of the
execution environment). Nothing here is tuned; `bench.coldstart` measures it next to the real
API handler in the same run.
"""

from __future__ import annotations

import logging
from typing import Any

import aioboto3  # type: ignore[import-untyped]
import structlog
from fastapi import FastAPI, HTTPException
from mangum import Mangum
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBLINE_", extra="ignore")

    table_name: str
    aws_region: str = Field("us-east-1", validation_alias=AliasChoices("AWS_REGION"))
    aws_endpoint_url: str | None = Field(
        None, validation_alias=AliasChoices("AWS_ENDPOINT_URL")
    )


settings = Settings()  # type: ignore[call-arg]
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.JSONRenderer(),
    ],
    wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
)
log = structlog.get_logger()
session = aioboto3.Session()
app = FastAPI()
_dynamodb: Any = None


async def dynamodb() -> Any:
    """The DynamoDB client, created once."""
    global _dynamodb
    if _dynamodb is None:
        _dynamodb = await session.client(
            "dynamodb",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url or None,
        ).__aenter__()
    return _dynamodb


@app.get("/jobs/{job_id}")
async def get_job(job_id: str) -> dict[str, Any]:
    client = await dynamodb()
    response = await client.get_item(
        TableName=settings.table_name, Key={"id": {"S": job_id}}
    )
    item = response.get("Item")
    if item is None:
        log.info("job.not_found", job_id=job_id)
        raise HTTPException(status_code=404, detail="job not found")
    return {"id": item["id"]["S"], "status": item["status"]["S"]}


handler = Mangum(app, lifespan="off")
