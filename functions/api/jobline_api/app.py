"""The FastAPI app factory. The lifespan is cheap: Mangum runs it around every invocation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from jobline.bootstrap import get_service
from jobline.config import get_settings
from jobline.service import JobService

from jobline_api import errors
from jobline_api.routes import router


def create_app(
    service_factory: Callable[[], JobService] = get_service,
    allow_dev_identity: bool | None = None,
) -> FastAPI:
    """Build the app; the service comes from `service_factory` (cached: built once per environment)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.service = service_factory()
        app.state.allow_dev_identity = (
            get_settings().allow_dev_identity
            if allow_dev_identity is None
            else allow_dev_identity
        )
        yield

    app = FastAPI(title="Jobline", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    app.include_router(router)
    return app
