"""The FastAPI app factory, and how an app gets this execution environment's service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from jobline.bootstrap import get_service
from jobline.config import get_settings
from jobline.service import JobService

from jobline_api import errors, openapi
from jobline_api.correlation import CorrelationIds
from jobline_api.routes import router
from jobline_api.ui import router as ui_router


def create_app(
    service_factory: Callable[[], JobService] = get_service,
    allow_dev_identity: bool | None = None,
) -> FastAPI:
    """Build the app; the service comes from `service_factory` (cached: built once per environment)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        attach_environment(app)
        yield

    app = FastAPI(title="Jobline", version="0.1.0", lifespan=lifespan)
    app.state.service_factory = service_factory
    app.state.dev_identity = allow_dev_identity
    errors.install(app)
    app.include_router(router)
    app.include_router(ui_router)
    app.add_middleware(CorrelationIds)
    openapi.install(app)
    return app


def attach_environment(app: FastAPI) -> None:
    """Give the app the service and the identity setting of this execution environment.

    Both come from cached factories, so past the first call this is two cache look-ups: a server
    calls it once from the lifespan, the Lambda handler on every invocation (instead of a lifespan
    cycle per invocation), which also picks up a `bootstrap.reset()` (tests, SnapStart restore).
    """
    app.state.service = app.state.service_factory()
    configured = app.state.dev_identity
    app.state.allow_dev_identity = (
        get_settings().allow_dev_identity if configured is None else configured
    )
