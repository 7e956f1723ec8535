"""The API function's floor: what any FastAPI-on-Lambda function under the project's standards
pays before its first response, with none of Jobline's code (`bench.lambda_like` starts it as it
starts the API, with the same event, and reports the API as a ratio of it).

The libraries the API cannot do without (botocore, FastAPI, Mangum, pydantic-settings, structlog),
the garbage collector off during init as the handlers have it, one botocore session and DynamoDB
client, and one route answering the first request with one GetItem (404 for the unknown id).
"""

from __future__ import annotations

import gc

gc.disable()

import os  # noqa: E402
from typing import Any  # noqa: E402

import botocore.session  # noqa: E402
import fastapi  # noqa: E402
import mangum  # noqa: E402
import pydantic_settings  # noqa: E402, F401
import structlog  # noqa: E402, F401
from fastapi.responses import JSONResponse  # noqa: E402

client: Any = botocore.session.Session().create_client("dynamodb")
table = os.environ["JOBLINE_TABLE_NAME"]
app = fastapi.FastAPI()


@app.get("/jobs/{job_id}")
async def get_job(job_id: str) -> JSONResponse:
    item = client.get_item(TableName=table, Key={"id": {"S": job_id}}).get("Item")
    if item is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    return JSONResponse({"id": job_id})


asgi = mangum.Mangum(app, lifespan="off")
gc.freeze()
gc.enable()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response: dict[str, Any] = asgi(event, context)
    return response
