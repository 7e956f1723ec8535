"""The API's OpenAPI document: FastAPI's, completed with what FastAPI cannot know.

- every operation lists every status it answers with, errors with their `{"detail": ...}` schema
  (declared on the routes, `jobline_api.schemas.ERRORS`);
- the security schemes: the HTTP API's JWT bearer authorizer, and `X-Dev-User`, the local-only
  scheme (honoured only where `JOBLINE_ALLOW_DEV_IDENTITY` is on, as `make run` sets it; its
  description says whether this server is one); every route but `/health` requires one of them;
- `POST /jobs` takes one of the registered job types, each with its own payload schema: a `oneOf`
  discriminated by `type`, generated from the registry;
- links from a submitted job to reading, cancelling and retrying it (stateful testing follows them).

Built on the first `GET /openapi.json` (never at import: cold starts do not pay for it).
`make openapi` (`tools/openapi.py`) writes the deployed document (`docs/openapi.json`, no
development identity).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from jobline.models import SubmitRequest
from jobline.registry import JobTypeRegistry
from pydantic import TypeAdapter, ValidationError

JWT_SCHEME = "jwt"
DEV_USER_SCHEME = "devUser"
SUBMIT_REQUEST = "SubmitRequest"
JOB_ID_PARAMETER = {"job_id": "$response.body#/id"}
JOB_LINKS = {
    "GetJob": {"operationId": "get_job", "parameters": JOB_ID_PARAMETER},
    "CancelJob": {"operationId": "cancel_job", "parameters": JOB_ID_PARAMETER},
    "RetryJob": {"operationId": "retry_job", "parameters": JOB_ID_PARAMETER},
}
"""Where a job answer leads: its id is the path parameter of the job's own operations."""
PUBLIC_OPERATIONS = frozenset({"health"})
DEV_USER_DEPLOYED = (
    "Local runs only: the caller's identity, as sent, honoured only where "
    "JOBLINE_ALLOW_DEV_IDENTITY is true (`make run`). A deployed API ignores this header "
    "(template.yaml sets the variable to false) and answers 401 without a bearer token."
)
DEV_USER_HERE = (
    "Local runs only: the caller's identity, as sent. This server honours it "
    "(JOBLINE_ALLOW_DEV_IDENTITY is true); a deployed API ignores it."
)


def _component_name(name: str) -> str:
    """A component name for job type `name` (`http.request` -> `HttpRequest`)."""
    return "".join(
        part[:1].upper() + part[1:] for part in name.replace("-", ".").split(".")
    )


def _submit_variants(
    registry: JobTypeRegistry, components: dict[str, Any]
) -> dict[str, Any]:
    """`SubmitRequest` as a `oneOf` of one schema per job type (their payload models added to
    `components`)."""
    base = SubmitRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    fields = {
        name: spec
        for name, spec in base["properties"].items()
        if name not in ("type", "payload")
    }
    mapping: dict[str, str] = {}
    for job_type in registry:
        stem = _component_name(job_type.name)
        payload = TypeAdapter(job_type.input_model).json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(payload.pop("$defs", {}))
        try:
            job_type.input_model.model_validate({})
            payload_required = False
        except ValidationError:
            payload_required = True
        payload["title"] = f"{stem}Payload"
        components[f"{stem}Payload"] = payload
        variant = f"{stem}JobSubmission"
        components[variant] = {
            "title": variant,
            "description": f"A `{job_type.name}` job: {job_type.description}",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "const": job_type.name},
                "payload": {"$ref": f"#/components/schemas/{stem}Payload"},
                **fields,
            },
            "required": ["type"],
            # The payload inline or uploaded (`payload_upload`), never both.
            **(
                {"oneOf": [{"required": ["payload"]}, {"required": ["payload_upload"]}]}
                if payload_required
                else {"not": {"required": ["payload", "payload_upload"]}}
            ),
        }
        mapping[job_type.name] = f"#/components/schemas/{variant}"
    return {
        "title": SUBMIT_REQUEST,
        "description": "A job to run: its type, and that type's payload (or the upload "
        "that carries it).",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }


def build_openapi(
    app: FastAPI, registry: JobTypeRegistry, *, dev_identity: bool
) -> dict[str, Any]:
    """The complete document of `app` serving `registry`'s job types."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas[SUBMIT_REQUEST] = _submit_variants(registry, schemas)
    schemes: dict[str, Any] = {
        JWT_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token the HTTP API's JWT authorizer accepts; the caller is "
            "its `sub`.",
        }
    }
    schemes[DEV_USER_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-Dev-User",
        "description": DEV_USER_HERE if dev_identity else DEV_USER_DEPLOYED,
    }
    requirement: list[dict[str, list[str]]] = [{JWT_SCHEME: []}, {DEV_USER_SCHEME: []}]
    components["securitySchemes"] = schemes
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if operation.get("operationId") in PUBLIC_OPERATIONS:
                operation["security"] = []
                continue
            operation["security"] = requirement
            for status, response in operation.get("responses", {}).items():
                if status in ("200", "202") and _returns_a_job(response):
                    response["links"] = JOB_LINKS
    return document


def _returns_a_job(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/JobOut"))


def install(app: FastAPI) -> None:
    """Serve the complete document at `/openapi.json`, built on first request from the job types
    and the identity setting the app was given (`attach_environment`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            service = getattr(app.state, "service", None)
            registry = service.registry if service is not None else default_registry()
            dev_identity = bool(
                getattr(app.state, "allow_dev_identity", app.state.dev_identity)
            )
            app.openapi_schema = build_openapi(app, registry, dev_identity=dev_identity)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def default_registry() -> JobTypeRegistry:
    """The deployment's job types, for a document built before the app has its service."""
    from jobline.bootstrap import default_registry

    return default_registry()
