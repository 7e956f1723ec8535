"""The API contract: docs/openapi.json is the app's own document (with the example job types: a
team's own types never make it stale), and it says everything the API does (every status with its
error schema, the security schemes, the job types)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jobline_client
import jobline_client.models
import pytest
from fastapi.testclient import TestClient
from jobline.bootstrap import default_registry
from jobline.registry import JobTypeRegistry
from jobline_api.app import create_app

from tests.support.services import build_fake_service
from tools.openapi import published_registry

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def _live(
    allow_dev_identity: bool, registry: JobTypeRegistry | None = None
) -> dict[str, Any]:
    """The app's document, serving `registry`'s types (default: the discovered ones)."""
    service = build_fake_service(registry)[0]
    app = create_app(
        service_factory=lambda: service, allow_dev_identity=allow_dev_identity
    )
    with TestClient(app) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for item in document["paths"].values()
        for operation in item.values()
    }


def test_the_committed_document_is_the_apis_own() -> None:
    committed = json.loads(COMMITTED.read_text())
    live = _live(allow_dev_identity=False, registry=published_registry())
    assert live == committed, (
        "docs/openapi.json differs from the API's OpenAPI document: run `make openapi` "
        "and commit the result"
    )


def test_every_operation_lists_every_status_it_answers_with() -> None:
    operations = _operations(_live(allow_dev_identity=False))

    statuses = {name: sorted(op["responses"]) for name, op in operations.items()}

    assert statuses == {
        "health": ["200"],
        "list_job_types": ["200", "401", "422"],
        "submit_job": ["200", "202", "400", "401", "409", "413", "422", "503"],
        "list_jobs": ["200", "400", "401", "422", "503"],
        "get_job": ["200", "401", "404", "422", "503"],
        "cancel_job": ["200", "202", "401", "404", "409", "422", "503"],
        "retry_job": ["200", "401", "404", "409", "422", "503"],
        "create_upload": ["201", "401", "422", "503"],
    }
    error = {"$ref": "#/components/schemas/ErrorOut"}
    gateway = {"$ref": "#/components/schemas/GatewayError"}
    unknown_outcome = {"$ref": "#/components/schemas/SubmitUnavailableOut"}
    for name, operation in operations.items():
        for status, response in operation["responses"].items():
            schema = response["content"]["application/json"]["schema"]
            if status == "401":  # the app's own, or API Gateway's authorizer's
                assert schema["anyOf"] == [error, gateway]
            elif (name, status) == ("submit_job", "503"):
                # an ErrorOut with the id the job may have been stored under, and its Location
                assert schema == unknown_outcome
                assert set(response["headers"]) == {"Location", "Retry-After"}
            elif status.startswith(("4", "5")):
                assert schema == error


def test_every_route_but_health_takes_the_jwt_or_the_local_only_dev_header() -> None:
    deployed = _live(allow_dev_identity=False)
    local = _live(allow_dev_identity=True)

    for document in (deployed, local):
        schemes = document["components"]["securitySchemes"]
        assert set(schemes) == {"jwt", "devUser"}
        assert schemes["jwt"]["scheme"] == "bearer"
        dev_user = schemes["devUser"]
        assert (dev_user["type"], dev_user["in"], dev_user["name"]) == (
            "apiKey",
            "header",
            "X-Dev-User",
        )
        # A generated client can send either; the scheme says where the header counts
        assert dev_user["description"].startswith("Local runs only")
        assert "JOBLINE_ALLOW_DEV_IDENTITY" in dev_user["description"]
        for name, operation in _operations(document).items():
            assert operation["security"] == (
                [] if name == "health" else [{"jwt": []}, {"devUser": []}]
            )
    # The deployed document (docs/openapi.json) says a deployment ignores it; a local server's
    # says this server honours it
    assert (
        "A deployed API ignores this header"
        in (deployed["components"]["securitySchemes"]["devUser"]["description"])
    )
    assert (
        "This server honours it"
        in (local["components"]["securitySchemes"]["devUser"]["description"])
    )


def test_every_schema_is_titled_by_its_name() -> None:
    # Generated clients name their models after titles: `SleepJobSubmission`, not "Submit a sleep
    # job" (`SubmitASleepJob`)
    schemas = _live(allow_dev_identity=False)["components"]["schemas"]

    assert {name: schema.get("title") for name, schema in schemas.items()} == {
        name: name for name in schemas
    }


def test_a_submission_is_one_of_the_registered_job_types() -> None:
    schemas = _live(allow_dev_identity=False)["components"]["schemas"]

    submit = schemas["SubmitRequest"]

    assert submit["discriminator"]["propertyName"] == "type"
    assert sorted(submit["discriminator"]["mapping"]) == default_registry().names()
    sleep = schemas["SleepJobSubmission"]
    assert sleep["properties"]["type"] == {"type": "string", "const": "sleep"}
    # {} is not a sleep payload: it comes inline or uploaded, one of the two
    assert sleep["required"] == ["type"]
    assert sleep["oneOf"] == [
        {"required": ["payload"]},
        {"required": ["payload_upload"]},
    ]
    # {} is an echo payload: none is needed, but never both
    echo = schemas["EchoJobSubmission"]
    assert echo["required"] == ["type"]
    assert echo["not"] == {"required": ["payload", "payload_upload"]}
    assert sleep["properties"]["payload_upload"]["type"] == "string"
    payload = schemas["SleepPayload"]
    assert payload["properties"]["seconds"]["maximum"] == 600
    # And the counts are integers, not integer-like text or booleans
    assert sleep["properties"]["max_attempts"]["type"] == "integer"


def test_a_submitted_job_links_to_its_own_operations() -> None:
    submit = _operations(_live(allow_dev_identity=False))["submit_job"]

    links = submit["responses"]["202"]["links"]

    assert {link["operationId"] for link in links.values()} == {
        "get_job",
        "cancel_job",
        "retry_job",
    }
    assert all(
        link["parameters"] == {"job_id": "$response.body#/id"}
        for link in links.values()
    )


def test_the_document_is_built_on_first_request_not_at_startup() -> None:
    # Cold starts do not pay for it: building the app (and its init phase) leaves it unbuilt
    service = build_fake_service()[0]
    app = create_app(service_factory=lambda: service, allow_dev_identity=False)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert app.openapi_schema is None
        client.get("/openapi.json")
    assert app.openapi_schema is not None


# ------------------------------------------------------------------- the Python client
CLIENT_MODELS = {
    "JobOut": jobline_client.Job,
    "JobError": jobline_client.models.JobError,
    "ProgressOut": jobline_client.models.Progress,
    "AttemptOut": jobline_client.models.Attempt,
    "JobTypeOut": jobline_client.models.JobTypeInfo,
    "JobPageOut": jobline_client.models.JobPage,
    "JobSummaryOut": jobline_client.models.JobSummary,
}


@pytest.mark.parametrize("schema_name", sorted(CLIENT_MODELS))
def test_the_clients_models_have_the_documents_fields(schema_name: str) -> None:
    # Given the committed document's schema and the client's model of it
    schema = json.loads(COMMITTED.read_text())["components"]["schemas"][schema_name]
    model = CLIENT_MODELS[schema_name]

    # Then the client reads every field the API answers with, and none it does not (a job's
    # four fields of a link to its payload or result are one `DataLink` of the client's)
    fields = {f.name for f in dataclasses.fields(model)} - {"raw"}
    for name in ("payload", "result"):
        if f"{name}_link" in fields:
            fields.remove(f"{name}_link")
            fields |= {f"{name}_{part}" for part in LINK_PARTS}
    assert fields == set(schema["properties"]), schema_name


LINK_PARTS = {
    {"url": "url", "expires_at": "url_expires_at"}.get(field.name, field.name)
    for field in dataclasses.fields(jobline_client.DataLink)
}
"""The API's names of a `DataLink`'s fields, after `payload_` or `result_`."""


def test_the_clients_statuses_are_the_documents() -> None:
    schema = json.loads(COMMITTED.read_text())["components"]["schemas"]["JobStatus"]

    assert [status.value for status in jobline_client.JobStatus] == schema["enum"]


def test_the_client_parses_a_job_the_app_answers_with() -> None:
    # Given a job as the API returns it (every field the document lists)
    service = build_fake_service()[0]
    app = create_app(service_factory=lambda: service, allow_dev_identity=True)
    with TestClient(app) as client:
        body = client.post(
            "/jobs",
            json={"type": "echo", "payload": {"a": 1}},
            headers={"X-Dev-User": "ann", "X-Correlation-Id": "req-7"},
        ).json()

    # When the client parses it, then every documented field is read
    job = jobline_client.Job.from_dict(body)
    assert (job.id, job.status, job.payload, job.correlation_id) == (
        body["id"],
        jobline_client.JobStatus.QUEUED,
        {"a": 1},
        "req-7",
    )
