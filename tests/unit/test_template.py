"""template.yaml facts the code relies on: runtimes, worker semantics, queues, table, IAM, auth."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cfnlint.api import lint_file  # type: ignore[import-untyped]
from jobline.items import job_to_item
from jobline.models import MAX_ATTEMPTS, Job, JobFilter, JobStatus
from jobline.repository import (
    INDEX_BY_OWNER,
    INDEX_BY_OWNER_STATUS,
    INDEX_BY_OWNER_TYPE,
    build_query,
)
from jobline_local.template import TEMPLATE_PATH, load_template, resources_of_type

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
GLOBAL_FUNCTION: dict[str, Any] = TEMPLATE.get("Globals", {}).get("Function", {})
FUNCTIONS = resources_of_type(TEMPLATE, "AWS::Serverless::Function")
QUEUES = resources_of_type(TEMPLATE, "AWS::SQS::Queue")
TABLE = RESOURCES["JobsTable"]["Properties"]
NOW = datetime(2024, 11, 26, 7, 0, 0, tzinfo=UTC)
MIN_RUNTIME = (3, 12)


def function_property(function: str, name: str, default: Any = None) -> Any:
    """A function property, falling back to the template's Globals."""
    props = FUNCTIONS[function]["Properties"]
    return props.get(name, GLOBAL_FUNCTION.get(name, default))


def sqs_sources() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(function, queue logical id, event properties) for every SQS event source."""
    for function, resource in FUNCTIONS.items():
        for source in resource["Properties"].get("Events", {}).values():
            if source["Type"] == "SQS":
                props = source["Properties"]
                yield function, props["Queue"]["Fn::GetAtt"][0], props


def http_routes() -> Iterator[tuple[str, dict[str, Any]]]:
    """("METHOD /path", event properties) for every HttpApi event source."""
    for resource in FUNCTIONS.values():
        for source in resource["Properties"].get("Events", {}).values():
            if source["Type"] == "HttpApi":
                props = source["Properties"]
                yield f"{props['Method']} {props['Path']}", props


def iam_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource, statement) for every inline IAM statement of the template."""
    for name, resource in RESOURCES.items():
        props = resource.get("Properties", {})
        documents = [
            policy for policy in props.get("Policies", []) if isinstance(policy, dict)
        ]
        documents += [
            policy.get("PolicyDocument", {})
            for policy in props.get("Policies", [])
            if isinstance(policy, dict)
        ]
        documents += [props[key] for key in ("PolicyDocument",) if key in props]
        for document in documents:
            statements = document.get("Statement", [])
            for statement in (
                statements if isinstance(statements, list) else [statements]
            ):
                yield name, statement


def python_version(runtime: str) -> tuple[int, int]:
    """`python3.12` -> (3, 12)."""
    assert runtime.startswith("python"), runtime
    major, minor = runtime.removeprefix("python").split(".")
    return int(major), int(minor)


# ------------------------------------------------------------------------ functions
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_runs_a_current_python(function: str) -> None:
    # Given a function's runtime (its own or the global one)
    runtime = function_property(function, "Runtime")

    # Then it is Python 3.12 or newer, like the layer's build method
    assert python_version(runtime) >= MIN_RUNTIME


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_uses_the_shared_layer(function: str) -> None:
    # Given a function's layers (its own or the global ones)
    layers = function_property(function, "Layers", [])

    # Then the shared layer is one of them
    assert {"Ref": "SharedLayer"} in layers


def test_api_function_answers_within_the_http_api_integration_timeout() -> None:
    # Given the API function's timeout
    timeout = function_property("ApiFunction", "Timeout")

    # Then it returns before HTTP API gives up on the integration (30 s)
    assert timeout < 30


def test_the_sqs_triggered_functions_are_the_worker_ingest_and_dead_letter_consumer() -> (
    None
):
    # Given every SQS event source of the template
    sources = {(function, queue) for function, queue, _ in sqs_sources()}

    # Then each function is triggered by exactly its queue
    assert sources == {
        ("WorkerFunction", "JobsQueue"),
        ("IngestFunction", "IngestQueue"),
        ("DeadLetterFunction", "JobsDeadLetterQueue"),
    }


@pytest.mark.parametrize(
    ("function", "queue"), sorted((fn, queue) for fn, queue, _ in sqs_sources())
)
def test_every_sqs_trigger_reports_batch_item_failures(
    function: str, queue: str
) -> None:
    # Given the function's trigger on the queue
    (props,) = [p for fn, q, p in sqs_sources() if (fn, q) == (function, queue)]

    # Then it reports partial batch failures, so one bad record never returns the whole batch
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_dead_letter_consumer_can_be_paused_by_a_parameter() -> None:
    # Given the dead-letter consumer's trigger and the parameter that drives it
    (props,) = [p for fn, _, p in sqs_sources() if fn == "DeadLetterFunction"]
    parameter = TEMPLATE["Parameters"]["DeadLetterConsumerEnabled"]

    # Then the trigger is enabled unless the parameter says "false" (messages then stay in the
    # DLQ, for `make redrive`)
    assert props["Enabled"] == {"Fn::If": ["IsDeadLetterConsumerEnabled", True, False]}
    assert TEMPLATE["Conditions"]["IsDeadLetterConsumerEnabled"] == {
        "Fn::Equals": [{"Ref": "DeadLetterConsumerEnabled"}, "true"]
    }
    assert (parameter["Default"], parameter["AllowedValues"]) == (
        "true",
        ["true", "false"],
    )


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (
            "WorkerFunction",
            {
                ("dynamodb:GetItem", "JobsTable"),
                ("dynamodb:UpdateItem", "JobsTable"),
                ("sqs:ChangeMessageVisibility", "JobsQueue"),
            },
        ),
        (
            "IngestFunction",
            {
                ("dynamodb:GetItem", "JobsTable"),
                ("dynamodb:PutItem", "JobsTable"),
                ("dynamodb:DeleteItem", "JobsTable"),
                ("sqs:SendMessage", "JobsQueue"),
            },
        ),
        (
            "DeadLetterFunction",
            {
                ("dynamodb:GetItem", "JobsTable"),
                ("dynamodb:UpdateItem", "JobsTable"),
            },
        ),
    ],
)
def test_queue_triggered_functions_may_do_exactly_what_their_code_does(
    function: str, expected: set[tuple[str, str]]
) -> None:
    # Given the function's inline IAM statements (SAM adds the trigger's own SQS permissions)
    granted = set()
    for resource, statement in iam_statements():
        if resource != function:
            continue
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        targets = statement["Resource"]
        for action in actions if isinstance(actions, list) else [actions]:
            for target in targets if isinstance(targets, list) else [targets]:
                granted.add((action, target["Fn::GetAtt"][0]))

    # Then they allow exactly the calls its code makes, on exactly the resources it uses
    assert granted == expected


# --------------------------------------------------------------------------- queues
@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_every_queue_is_encrypted(queue: str) -> None:
    assert QUEUES[queue]["Properties"]["SqsManagedSseEnabled"] is True


def test_every_queue_with_a_redrive_policy_outlasts_job_retries() -> None:
    # Given every queue that has a dead-letter queue
    policies = {
        name: queue["Properties"]["RedrivePolicy"]
        for name, queue in QUEUES.items()
        if "RedrivePolicy" in queue["Properties"]
    }
    assert set(policies) == {"JobsQueue", "IngestQueue"}
    worker_queues = {q for fn, q, _ in sqs_sources() if fn == "WorkerFunction"}

    for name, policy in policies.items():
        # Then its dead-letter target is a queue of the template
        target = policy["deadLetterTargetArn"]["Fn::GetAtt"]
        assert target[0] in QUEUES and target[0] != name
        assert target[1] == "Arn"
        # And a message is received at least 5 times
        assert policy["maxReceiveCount"] >= 5
        # And a job message more often than a job may attempt (each failed attempt returns it)
        if name in worker_queues:
            assert policy["maxReceiveCount"] > MAX_ATTEMPTS


def test_every_triggering_queue_has_a_dead_letter_queue() -> None:
    # Given the queues that trigger functions, except dead-letter queues themselves (the jobs
    # DLQ's consumer acknowledges every record but on a storage failure, which it retries until
    # storage is back: a DLQ of the DLQ would only lose track of those jobs)
    dead_letter_queues = {
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for queue in QUEUES.values()
        if "RedrivePolicy" in queue["Properties"]
    }
    triggering = {queue for _, queue, _ in sqs_sources()} - dead_letter_queues
    assert triggering == {"JobsQueue", "IngestQueue"}

    # Then each sends poison messages to a dead-letter queue
    for queue in triggering:
        assert "RedrivePolicy" in QUEUES[queue]["Properties"]


def test_queue_visibility_covers_six_function_timeouts_plus_the_batching_window() -> (
    None
):
    # Given every queue -> function trigger
    triggers = list(sqs_sources())
    assert triggers

    for function, queue, props in triggers:
        # When the function's timeout and the source's batching window are read
        timeout = function_property(function, "Timeout")
        window = props.get("MaximumBatchingWindowInSeconds", 0)

        # Then the queue hides a received message for at least 6 x timeout + window
        visibility = QUEUES[queue]["Properties"]["VisibilityTimeout"]
        assert visibility >= 6 * timeout + window, (function, queue)


# ---------------------------------------------------------------------------- table
def test_table_is_on_demand_with_ttl_and_point_in_time_recovery() -> None:
    assert TABLE["BillingMode"] == "PAY_PER_REQUEST"
    assert TABLE["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": True,
    }
    assert TABLE["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }
    assert TABLE["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_the_ttl_attribute_is_what_the_repository_writes_on_finished_jobs() -> None:
    # Given a finished job as the repository stores it
    job = Job(
        id="a" * 32,
        owner="ann",
        type="echo",
        status=JobStatus.SUCCEEDED,
        payload={},
        created_at=NOW,
        updated_at=NOW,
        finished_at=NOW,
        expires_at=int(NOW.timestamp()) + 86400,
    )
    item = job_to_item(job)

    # Then its TTL attribute is a number of epoch seconds
    ttl_attribute = TABLE["TimeToLiveSpecification"]["AttributeName"]
    assert item[ttl_attribute] == {"N": str(int(NOW.timestamp()) + 86400)}


@pytest.mark.parametrize(
    ("job_filter", "index"),
    [
        (JobFilter(), INDEX_BY_OWNER),
        (JobFilter(status=JobStatus.SUCCEEDED), INDEX_BY_OWNER_STATUS),
        (JobFilter(type="echo"), INDEX_BY_OWNER_TYPE),
        (JobFilter(status=JobStatus.QUEUED, type="echo"), INDEX_BY_OWNER_STATUS),
    ],
)
def test_every_index_the_repository_queries_exists_with_its_keys(
    job_filter: JobFilter, index: str
) -> None:
    # Given the query the repository builds for a filter
    request = build_query("jobs", "ann", job_filter, 10, None, NOW)
    partition = request["ExpressionAttributeNames"]["#pk"]

    # When the template's index of that name is looked up
    indexes = {gsi["IndexName"]: gsi for gsi in TABLE["GlobalSecondaryIndexes"]}
    assert request["IndexName"] == index
    gsi = indexes[index]

    # Then it is keyed by the queried partition attribute and the `sk` sort key, projecting all
    assert gsi["KeySchema"] == [
        {"AttributeName": partition, "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert gsi["Projection"] == {"ProjectionType": "ALL"}
    # And every key attribute is declared as a string the repository writes on each item
    declared = {
        definition["AttributeName"]: definition["AttributeType"]
        for definition in TABLE["AttributeDefinitions"]
    }
    item = job_to_item(
        Job(
            id="b" * 32,
            owner="ann",
            type="echo",
            status=JobStatus.QUEUED,
            payload={},
            created_at=NOW,
            updated_at=NOW,
        )
    )
    for attribute in (partition, "sk"):
        assert declared[attribute] == "S"
        assert set(item[attribute]) == {"S"}


def test_the_table_has_no_index_the_repository_does_not_query() -> None:
    # Given the template's indexes
    indexes = {gsi["IndexName"] for gsi in TABLE["GlobalSecondaryIndexes"]}

    # Then they are exactly the repository's (an unused index costs a write per job write)
    assert indexes == {INDEX_BY_OWNER, INDEX_BY_OWNER_STATUS, INDEX_BY_OWNER_TYPE}


# ------------------------------------------------------------------------------ IAM
def test_no_iam_statement_grants_every_resource() -> None:
    # Given every inline IAM statement
    statements = list(iam_statements())
    assert statements

    for resource, statement in statements:
        # Then each names its resources
        targets = statement.get("Resource", [])
        targets = targets if isinstance(targets, list) else [targets]
        assert "*" not in targets, resource


# ----------------------------------------------------------------------------- auth
def test_http_api_uses_a_jwt_authorizer_configured_from_parameters() -> None:
    # Given the HTTP API's auth configuration
    auth = RESOURCES["HttpApi"]["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]

    # Then the default authorizer checks a bearer JWT against the issuer and audience parameters
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    assert authorizer["JwtConfiguration"] == {
        "issuer": {"Ref": "JwtIssuer"},
        "audience": {"Ref": "JwtAudience"},
    }
    assert {"JwtIssuer", "JwtAudience"} <= set(TEMPLATE["Parameters"])


def test_only_the_health_route_skips_the_authorizer() -> None:
    # Given every HTTP API route of the template
    routes = dict(http_routes())

    # Then each is on the HTTP API, and only the health check opts out of the authorizer
    assert all(props["ApiId"] == {"Ref": "HttpApi"} for props in routes.values())
    public = {
        route
        for route, props in routes.items()
        if props.get("Auth", {}).get("Authorizer") == "NONE"
    }
    assert public == {"GET /health"}


# ---------------------------------------------------------------------------- layer
def test_shared_layer_is_built_from_shared_for_the_function_runtime() -> None:
    # Given the shared layer
    layer = RESOURCES["SharedLayer"]

    # Then SAM builds shared/ with python3.12's pip, for the functions' runtime
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "shared/"
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert GLOBAL_FUNCTION["Runtime"] in layer["Properties"]["CompatibleRuntimes"]


# ------------------------------------------------------------------------- cfn-lint
def test_cfn_lint_finds_nothing() -> None:
    # When cfn-lint checks the template with its default rules (errors and warnings)
    matches = lint_file(TEMPLATE_PATH)

    # Then it has no findings
    assert [str(match) for match in matches] == []


def test_the_api_reads_its_cursor_key_from_its_own_ssm_parameter() -> None:
    # Given the API function's environment and inline IAM statements
    props = TEMPLATE["Resources"]["ApiFunction"]["Properties"]
    variables = props["Environment"]["Variables"]
    statements = [s for r, s in iam_statements() if r == "ApiFunction"]
    ssm = [s for s in statements if "ssm" in str(s["Action"])]

    # Then the key is named, not passed: no key sits in the environment or the parameters
    parameter = variables["JOBLINE_CURSOR_SECRET_PARAMETER"]["Fn::Sub"]
    assert variables["JOBLINE_CURSOR_SECRET"] == ""
    assert not any(
        "NoEcho" in spec and "Cursor" in name
        for name, spec in TEMPLATE["Parameters"].items()
    )
    # And the function may read exactly that parameter, and nothing else from SSM
    assert [s["Action"] for s in ssm] == ["ssm:GetParameter"]
    assert ssm[0]["Resource"]["Fn::Sub"].endswith(f":parameter{parameter}")
    # And no other function may read it
    others = [s for r, s in iam_statements() if r != "ApiFunction"]
    assert not any("ssm" in str(s["Action"]) for s in others)
