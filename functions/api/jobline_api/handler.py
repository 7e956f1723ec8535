"""Lambda entry point of the API function (template.yaml: `jobline_api.handler.lambda_handler`).

On Lambda, importing this module is the init phase: it builds the app and, through
`jobline_api.coldstart`, the service and one priming request, once per execution environment.
"""

from __future__ import annotations

import gc

# Init allocates what lives as long as the execution environment (modules, classes, schemas,
# clients) and next to no garbage, yet every automatic collection would walk all of it: collect
# nothing until init is done, then freeze what it built out of later collections (bottom).
gc.disable()

import sys
from typing import Any

from jobline.config import lambda_initialization_type
from jobline.logging import bind_invocation, configure
from mangum import Mangum
from snapshot_restore_py import (  # type: ignore[import-untyped]
    register_after_restore,
    register_before_snapshot,
)

if lambda_initialization_type() is not None:
    # FastAPI asks of every route's types, as the routes are declared, whether they are
    # pydantic.v1 models, importing pydantic.v1 to know (~3% of a cold start, docs/benchmarks.md).
    # Nothing in this function uses v1: on Lambda the import fails and FastAPI answers "no", as
    # it does where pydantic has no v1. (Lambda only: a test or local process may hold a
    # library that does use pydantic.v1.)
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]

from jobline_api import coldstart
from jobline_api.app import attach_environment, create_app
from jobline_api.stage import StageRootPath

configure()
app = create_app()
# No lifespan cycle around every invocation: `lambda_handler` attaches the cached service itself.
# Behind a named stage the stage is the ASGI root path (jobline_api.stage).
_asgi = Mangum(StageRootPath(app), lifespan="off")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Bind the invocation's log context, then hand the event to the ASGI app."""
    bind_invocation(
        getattr(context, "aws_request_id", None),
        getattr(context, "function_name", None),
    )
    attach_environment(app)
    response: dict[str, Any] = _asgi(event, context)
    return response


# SnapStart only (template.yaml's EnableSnapStart): Lambda calls these around the snapshot.
register_before_snapshot(coldstart.before_snapshot)
register_after_restore(coldstart.after_restore)
if lambda_initialization_type() is not None:
    coldstart.initialize(app, lambda_handler)
gc.freeze()
gc.enable()
