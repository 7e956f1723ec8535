"""template.yaml facts the code relies on: runtimes, worker semantics, queues, table, IAM, auth."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cfnlint.api import lint_file  # type: ignore[import-untyped]
from jobline import limits
from jobline.aws.items import job_to_item
from jobline.aws.listing import INDEX_BY_OWNER, INDEX_BY_OWNER_STATUS, build_query
from jobline.config import Settings
from jobline.limits import MAX_ATTEMPTS
from jobline.metrics import COUNTS, DURATIONS
from jobline.models import Job, JobFilter, JobStatus
from jobline.targets import LAMBDA_ARN
from jobline.usecases import claim_check
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


def policies_of(props: dict[str, Any]) -> list[dict[str, Any]]:
    """A resource's inline policies, a conditional one (`!If [Condition, policy, NoValue]`) as
    the policy it is when its condition holds."""
    policies = []
    for policy in props.get("Policies", []):
        if isinstance(policy, dict) and "Fn::If" in policy:
            _, policy, otherwise = policy["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}
        if isinstance(policy, dict):
            policies.append(policy)
    return policies


def iam_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource, statement) for every inline IAM statement of the template (a conditional
    policy's as if its condition held)."""
    for name, resource in RESOURCES.items():
        props = resource.get("Properties", {})
        documents = policies_of(props)
        documents += [policy.get("PolicyDocument", {}) for policy in policies_of(props)]
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
        ("LongWorkerFunction", "LongJobsQueue"),
        ("IngestFunction", "IngestQueue"),
        ("DeadLetterFunction", "JobsDeadLetterQueue"),
        ("DeadLetterFunction", "LongJobsDeadLetterQueue"),
        ("OutboxRecoveryFunction", "OutboxFailureQueue"),
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
    # Given the dead-letter consumer's triggers (one per lane) and the parameter that drives them
    triggers = [p for fn, _, p in sqs_sources() if fn == "DeadLetterFunction"]
    parameter = TEMPLATE["Parameters"]["DeadLetterConsumerEnabled"]

    # Then each trigger is enabled unless the parameter says "false" (messages then stay in the
    # DLQ, for `make redrive`)
    assert len(triggers) == 2
    for props in triggers:
        assert props["Enabled"] == {
            "Fn::If": ["IsDeadLetterConsumerEnabled", True, False]
        }
    assert TEMPLATE["Conditions"]["IsDeadLetterConsumerEnabled"] == {
        "Fn::Equals": [{"Ref": "DeadLetterConsumerEnabled"}, "true"]
    }
    assert (parameter["Default"], parameter["AllowedValues"]) == (
        "true",
        ["true", "false"],
    )


POLL = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
PAYLOADS = "${JobDataBucket.Arn}/payloads/*"
RESULTS = "${JobDataBucket.Arn}/results/*"
UPLOADS = "${JobDataBucket.Arn}/uploads/*"
"""The data bucket's prefixes (`jobline.usecases.claim_check`'s keys)."""
"""What an SQS event source mapping does with its function's role."""


def role_of(function: str) -> str:
    """The logical id of a function's execution role (every function has its own)."""
    role = function_property(function, "Role")
    assert role["Fn::GetAtt"][1] == "Arn", function
    name: str = role["Fn::GetAtt"][0]
    return name


def evaluate(value: Any, parameters: dict[str, list[str]]) -> Any:
    """A resource expression of Ref (a list parameter), Fn::Join and Fn::Split, as CloudFormation
    computes it from the `parameters`' values."""
    if isinstance(value, list):
        return [evaluate(item, parameters) for item in value]
    if not isinstance(value, dict):
        return value
    ((function, argument),) = value.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Fn::Join":
        delimiter, items = argument
        return delimiter.join(evaluate(items, parameters))
    if function == "Fn::Split":
        delimiter, text = argument
        return evaluate(text, parameters).split(delimiter)
    raise AssertionError(f"cannot evaluate {function}")


JOB_TARGETS = "each of JobTargetArns, and each with :*"
"""The worker's Lambda grant (`target_name`), checked by evaluating it in
test_the_workers_may_invoke_exactly_the_job_target_functions."""


def target_name(target: Any) -> str:
    """A statement's resource as the template writes it: `Table` for !GetAtt Table.Arn, the
    string for a !Sub, "*" for every resource, JOB_TARGETS for the list JobTargetArns makes."""
    if isinstance(target, str):
        return target
    if "Fn::GetAtt" in target:
        name: str = target["Fn::GetAtt"][0]
        return name
    if "Fn::Split" in target:
        arns = ["arn:a", "arn:b:live"]
        if evaluate(target, {"JobTargetArns": arns}) == [
            *arns,
            *(f"{arn}:*" for arn in arns),
        ]:
            return JOB_TARGETS
        return json.dumps(target)
    sub: str = target["Fn::Sub"]
    return sub


def granted(function: str) -> set[tuple[str, str]]:
    """(action, resource) pairs the function's role allows."""
    allowed = set()
    for resource, statement in iam_statements():
        if resource != role_of(function):
            continue
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        targets = statement["Resource"]
        for action in actions if isinstance(actions, list) else [actions]:
            for target in targets if isinstance(targets, list) else [targets]:
                allowed.add((action, target_name(target)))
    return allowed


def logs_and_traces(function: str) -> set[tuple[str, str]]:
    group = function_property(function, "LoggingConfig")["LogGroup"]["Ref"]
    return {
        ("logs:CreateLogStream", group),
        ("logs:PutLogEvents", group),
        ("xray:PutTraceSegments", "*"),
        ("xray:PutTelemetryRecords", "*"),
    }


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (
            "ApiFunction",
            {
                ("dynamodb:GetItem", "JobsTable"),
                ("dynamodb:BatchGetItem", "JobsTable"),
                ("dynamodb:PutItem", "JobsTable"),
                ("dynamodb:UpdateItem", "JobsTable"),
                ("dynamodb:Query", "${JobsTable.Arn}/index/*"),
                (
                    "ssm:GetParameter",
                    "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
                    "${CursorSecretParameterName}",
                ),
                # large payloads written, uploads read (and the upload forms it signs)
                ("s3:GetObject", PAYLOADS),
                ("s3:PutObject", PAYLOADS),
                ("s3:GetObject", UPLOADS),
                ("s3:PutObject", UPLOADS),
                # the results' download URLs it signs
                ("s3:GetObject", RESULTS),
                ("s3:ListBucket", "JobDataBucket"),
            },
        ),
        (
            # (the workers too, when JobTargetArns names some, the job types' target functions)
            "WorkerFunction",
            {
                ("dynamodb:GetItem", "JobsTable"),
                ("dynamodb:UpdateItem", "JobsTable"),
                ("sqs:ChangeMessageVisibility", "JobsQueue"),
                ("lambda:InvokeFunction", JOB_TARGETS),
                ("s3:GetObject", PAYLOADS),
                ("s3:PutObject", RESULTS),
                ("s3:ListBucket", "JobDataBucket"),
            }
            | {(action, "JobsQueue") for action in POLL},
        ),
        (
            "LongWorkerFunction",
            {
                ("dynamodb:GetItem", "JobsTable"),
                ("dynamodb:UpdateItem", "JobsTable"),
                ("sqs:ChangeMessageVisibility", "LongJobsQueue"),
                ("lambda:InvokeFunction", JOB_TARGETS),
                ("s3:GetObject", PAYLOADS),
                ("s3:PutObject", RESULTS),
                ("s3:ListBucket", "JobDataBucket"),
            }
            | {(action, "LongJobsQueue") for action in POLL},
        ),
        (
            # The ingest use case stores with a conditional PutItem (a replay returns the stored
            # job with the failed condition); the outbox sends the message.
            "IngestFunction",
            {("dynamodb:PutItem", "JobsTable"), ("s3:PutObject", PAYLOADS)}
            | {(action, "IngestQueue") for action in POLL},
        ),
        (
            "DeadLetterFunction",
            {
                ("dynamodb:GetItem", "JobsTable"),
                ("dynamodb:UpdateItem", "JobsTable"),
            }
            | {(action, "JobsDeadLetterQueue") for action in POLL}
            | {(action, "LongJobsDeadLetterQueue") for action in POLL},
        ),
        (
            # The stream's event source mapping reads with the function's role; the
            # on-failure destination is sent to with it too.
            "OutboxFunction",
            {
                (action, "JobsTable")
                for action in (
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                )
            }
            | {
                ("sqs:SendMessage", "JobsQueue"),
                ("sqs:SendMessage", "LongJobsQueue"),
                ("sqs:SendMessage", "OutboxFailureQueue"),
            },
        ),
        (
            "OutboxRecoveryFunction",
            {
                ("dynamodb:GetRecords", "JobsTable"),
                ("dynamodb:GetShardIterator", "JobsTable"),
                ("sqs:SendMessage", "JobsQueue"),
                ("sqs:SendMessage", "LongJobsQueue"),
            }
            | {(action, "OutboxFailureQueue") for action in POLL},
        ),
    ],
)
def test_functions_may_do_exactly_what_their_code_does(
    function: str, expected: set[tuple[str, str]]
) -> None:
    # Given the function's role (SAM generates none: the template writes each role)
    assert FUNCTIONS[function]["Properties"].get("Policies") is None
    assert RESOURCES[role_of(function)]["Type"] == "AWS::IAM::Role"

    # Then it allows exactly the calls its code (and its event source) makes, on exactly the
    # resources it uses, plus writing its own logs and traces
    assert granted(function) == expected | logs_and_traces(function)


@pytest.mark.parametrize("worker", ["WorkerFunction", "LongWorkerFunction"])
def test_the_workers_may_invoke_exactly_the_job_target_functions(worker: str) -> None:
    # Given the parameter naming the functions job types may target, and a worker's policies
    # (a target type runs on the lane its timeout_s picks)
    parameter = TEMPLATE["Parameters"]["JobTargetArns"]
    role = RESOURCES[role_of(worker)]["Properties"]
    [conditional] = [p for p in role["Policies"] if "Fn::If" in p]
    condition, policy, otherwise = conditional["Fn::If"]

    # Then the policy exists only when the parameter names a function (its default names none) ...
    assert (parameter["Type"], parameter["Default"]) == ("CommaDelimitedList", "")
    assert TEMPLATE["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "JobTargetArns"}]}, ""]}]
    }
    assert otherwise == {"Ref": "AWS::NoValue"}
    # ... and then allows invoking exactly those ARNs, each also with an alias or version
    [statement] = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"]) == (
        "Allow",
        "lambda:InvokeFunction",
    )
    arns = [
        "arn:aws:lambda:eu-west-1:123456789012:function:resize",
        "arn:aws:lambda:eu-west-1:123456789012:function:ocr:live",
    ]
    assert evaluate(statement["Resource"], {"JobTargetArns": arns}) == [
        arns[0],
        arns[1],
        f"{arns[0]}:*",
        f"{arns[1]}:*",
    ]
    # And no other function may invoke a function
    for function in set(FUNCTIONS) - {"WorkerFunction", "LongWorkerFunction"}:
        assert not any(action.startswith("lambda:") for action, _ in granted(function))


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("", True),
        ("arn:aws:lambda:eu-west-1:123456789012:function:resize", True),
        ("arn:aws:lambda:eu-west-1:123456789012:function:resize:live", True),
        ("arn:aws:lambda:eu-west-1:123456789012:function:resize:7", True),
        ("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f", True),
        ("arn:aws-cn:lambda:cn-north-1:123456789012:function:f:$LATEST", True),
        ("resize", False),
        ("arn:aws:lambda:eu-west-1:123456789012:function:*", False),
        ("arn:aws:lambda:eu-west-1:123456789012:layer:resize", False),
        ("arn:aws:lambda:*:123456789012:function:resize", False),
        ("arn:aws:lambda:eu-west-1:1234:function:resize", False),
    ],
)
def test_job_target_arns_are_whole_function_arns(value: str, allowed: bool) -> None:
    # Given the parameter's pattern (CloudFormation matches it against each value of the list)
    pattern = TEMPLATE["Parameters"]["JobTargetArns"]["AllowedPattern"]

    # Then a value is a whole function ARN, with an optional alias or version: no wildcard, no
    # bare name (the grant would be wider than the ARN, or name nothing)
    assert bool(re.fullmatch(pattern, value)) is allowed
    # ... exactly what a job type may declare as its target
    if value:
        assert bool(LAMBDA_ARN.fullmatch(value)) is allowed


def test_every_sqs_trigger_polls_with_permission_on_its_queue_only() -> None:
    queues: dict[str, set[str]] = {}
    for function, queue, _ in sqs_sources():
        queues.setdefault(function, set()).add(queue)
    for function, polled_queues in queues.items():
        polled = {pair for pair in granted(function) if pair[0] in POLL}
        assert polled == {
            (action, queue) for action in POLL for queue in polled_queues
        }, function


def test_the_api_reads_the_cursor_secret_parameter_it_is_told_to_read() -> None:
    # Given the API function's environment and the parameter naming the secret
    variables = FUNCTIONS["ApiFunction"]["Properties"]["Environment"]["Variables"]
    parameter = TEMPLATE["Parameters"]["CursorSecretParameterName"]

    # Then the function is given the name (never the secret), which must be a full path so that
    # the role's parameter ARN is exact
    assert variables["JOBLINE_CURSOR_SECRET_PARAMETER"] == {
        "Ref": "CursorSecretParameterName"
    }
    # (JOBLINE_CURSOR_SECRET is declared empty, for `sam local invoke --env-vars` to fill in)
    assert variables["JOBLINE_CURSOR_SECRET"] == ""
    assert parameter["Type"] == "String" and "NoEcho" not in parameter
    assert re.fullmatch(parameter["AllowedPattern"], "/jobline/prod/cursor-secret")
    assert not re.fullmatch(parameter["AllowedPattern"], "jobline/no-leading-slash")
    # And no default: every environment names its own (samconfig.toml), and local runs (which
    # resolve parameters to their defaults) get no name, so JOBLINE_CURSOR_SECRET applies there
    assert "Default" not in parameter
    # And no other function may read anything from SSM
    for function in set(FUNCTIONS) - {"ApiFunction"}:
        assert not any(action.startswith("ssm:") for action, _ in granted(function))


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
    assert set(policies) == {
        "JobsQueue",
        "LongJobsQueue",
        "IngestQueue",
        "OutboxFailureQueue",
    }
    worker_queues = {
        q
        for fn, q, _ in sqs_sources()
        if fn in ("WorkerFunction", "LongWorkerFunction")
    }

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
    assert triggering == {
        "JobsQueue",
        "LongJobsQueue",
        "IngestQueue",
        "OutboxFailureQueue",
    }

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
        (JobFilter(status=JobStatus.FAILED), INDEX_BY_OWNER_STATUS),
        (JobFilter(status=JobStatus.SUCCEEDED), INDEX_BY_OWNER),
        (JobFilter(type="echo"), INDEX_BY_OWNER),
        (JobFilter(status=JobStatus.REJECTED, type="echo"), INDEX_BY_OWNER_STATUS),
    ],
)
def test_every_index_the_repository_queries_exists_with_its_keys(
    job_filter: JobFilter, index: str
) -> None:
    # Given the query the repository builds for a filter
    request = build_query("jobs", "ann", job_filter, 10, None)
    partition = request["ExpressionAttributeNames"]["#pk"]

    # When the template's index of that name is looked up
    indexes = {gsi["IndexName"]: gsi for gsi in TABLE["GlobalSecondaryIndexes"]}
    assert request["IndexName"] == index
    gsi = indexes[index]

    # Then it is keyed by the queried partition attribute and the `sk` sort key, projecting only
    # `type` (the filter it evaluates): nothing a transition changes, so no transition writes it
    assert gsi["KeySchema"] == [
        {"AttributeName": partition, "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert gsi["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["type"],
    }
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
            status=job_filter.status or JobStatus.QUEUED,
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
    assert indexes == {INDEX_BY_OWNER, INDEX_BY_OWNER_STATUS}


# ------------------------------------------------------------------------------ IAM
XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
"""X-Ray's trace upload actions support no resource-level permissions: `Resource: "*"` is the
only form IAM accepts for them (tests/unit/test_transformed_template.py checks the same after the
SAM transform)."""


def test_no_iam_statement_grants_every_resource() -> None:
    # Given every IAM statement
    statements = list(iam_statements())
    assert statements

    for resource, statement in statements:
        # Then each names its resources, but X-Ray's trace upload
        targets = statement.get("Resource", [])
        targets = targets if isinstance(targets, list) else [targets]
        actions = statement["Action"]
        if "*" in targets:
            assert (
                set(actions if isinstance(actions, list) else [actions]) <= XRAY_WRITE
            ), resource


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


def test_only_the_health_check_and_the_dashboard_page_skip_the_authorizer() -> None:
    # Given every HTTP API route of the template
    routes = dict(http_routes())

    # Then each is on the HTTP API, and only the health check and the dashboard's page and
    # static files (whose data calls are authenticated as usual) opt out of the authorizer
    assert all(props["ApiId"] == {"Ref": "HttpApi"} for props in routes.values())
    public = {
        route
        for route, props in routes.items()
        if props.get("Auth", {}).get("Authorizer") == "NONE"
    }
    assert public == {"GET /health", "GET /ui", "GET /ui/{proxy+}"}


# ---------------------------------------------------------------------------- layer
def test_shared_layer_is_built_from_shared_for_the_function_runtime() -> None:
    # Given the shared layer
    layer = RESOURCES["SharedLayer"]

    # Then SAM builds shared/ with the Makefile (tests/unit/test_build.py), for the functions'
    # runtime and architecture
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "shared/"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"]["BuildArchitecture"] == "x86_64"
    assert GLOBAL_FUNCTION["Runtime"] in layer["Properties"]["CompatibleRuntimes"]
    assert (
        GLOBAL_FUNCTION["Architectures"]
        == layer["Properties"]["CompatibleArchitectures"]
    )


# ------------------------------------------------------------------- concurrency
@pytest.mark.parametrize(
    ("function", "parameter", "default"),
    [
        ("WorkerFunction", "WorkerMaxConcurrency", 50),
        ("LongWorkerFunction", "LongWorkerMaxConcurrency", 10),
        ("IngestFunction", "IngestMaxConcurrency", 10),
        ("DeadLetterFunction", "DeadLetterMaxConcurrency", 2),
    ],
)
def test_every_sqs_trigger_runs_at_most_a_parameter_of_invocations(
    function: str, parameter: str, default: int
) -> None:
    # Given the function's SQS triggers and the parameter capping them
    triggers = [p for fn, _, p in sqs_sources() if fn == function]
    spec = TEMPLATE["Parameters"][parameter]

    # Then each event source never runs more invocations at once than the parameter allows
    # (AWS accepts 2..1000), so a backlog cannot take the account's concurrency
    assert triggers
    for props in triggers:
        assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": parameter}}
    assert (spec["Type"], spec["Default"], spec["MinValue"], spec["MaxValue"]) == (
        "Number",
        default,
        2,
        1000,
    )


def test_the_api_has_reserved_concurrency_unless_the_parameter_is_zero() -> None:
    # Given the API function's reserved concurrency and its parameter
    reserved = FUNCTIONS["ApiFunction"]["Properties"]["ReservedConcurrentExecutions"]
    spec = TEMPLATE["Parameters"]["ApiReservedConcurrency"]

    # Then ApiReservedConcurrency executions are the API's alone; 0 means "unreserved" (a
    # reservation of 0 would throttle every request)
    assert reserved == {
        "Fn::If": [
            "IsApiConcurrencyReserved",
            {"Ref": "ApiReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert TEMPLATE["Conditions"]["IsApiConcurrencyReserved"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ApiReservedConcurrency"}, "0"]}]
    }
    assert (spec["Default"], spec["MinValue"]) == (50, 0)


# ------------------------------------------------------------------------ alarms
ALARMS = resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm")


def alarms_on(namespace: str, metric: str) -> dict[str, dict[str, Any]]:
    """Alarm properties by the value of their single dimension."""
    found = {}
    for alarm in ALARMS.values():
        props = alarm["Properties"]
        if (props["Namespace"], props["MetricName"]) == (namespace, metric):
            (dimension,) = props["Dimensions"]
            value = dimension["Value"]
            key = value.get("Ref") or value["Fn::GetAtt"][0]
            found[key] = props
    return found


def test_every_alarm_notifies_the_alarm_topic() -> None:
    assert ALARMS
    for name, alarm in ALARMS.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert props["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert props["TreatMissingData"] == "notBreaching", name
        assert props["AlarmDescription"], name
    assert RESOURCES["AlarmTopic"]["Type"] == "AWS::SNS::Topic"


def test_an_alarm_email_subscribes_only_when_given() -> None:
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert TEMPLATE["Parameters"]["AlarmEmail"]["Default"] == ""
    assert TEMPLATE["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    pattern = TEMPLATE["Parameters"]["AlarmEmail"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "ops@example.com")
    assert not re.fullmatch(pattern, "not an address")


def test_a_message_in_any_dead_letter_queue_raises_an_alarm() -> None:
    # Given every dead-letter queue of the template
    dead_letter_queues = {
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for queue in QUEUES.values()
        if "RedrivePolicy" in queue["Properties"]
    }
    alarms = alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")

    # Then one visible message is enough (and on the outbox's failure queue too: a message there
    # is a batch of jobs waiting for their messages)
    assert dead_letter_queues == {
        "JobsDeadLetterQueue",
        "LongJobsDeadLetterQueue",
        "IngestDeadLetterQueue",
        "OutboxFailureDeadLetterQueue",
    }
    assert set(alarms) == dead_letter_queues | {"OutboxFailureQueue"}
    for props in alarms.values():
        assert props["Dimensions"][0]["Name"] == "QueueName"
        assert props["Dimensions"][0]["Value"]["Fn::GetAtt"][1] == "QueueName"
        assert (
            props["Statistic"],
            props["ComparisonOperator"],
            props["Threshold"],
        ) == (
            "Maximum",
            "GreaterThanThreshold",
            0,
        )


def test_an_old_message_in_the_jobs_or_ingest_queue_raises_an_alarm() -> None:
    alarms = alarms_on("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert set(alarms) == {"JobsQueue", "LongJobsQueue", "IngestQueue"}
    for props in alarms.values():
        assert props["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"}
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert TEMPLATE["Parameters"]["QueueAgeAlarmSeconds"]["Default"] == 900


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_errors_and_throttles(metric: str) -> None:
    alarms = alarms_on("AWS/Lambda", metric)
    assert set(alarms) == set(FUNCTIONS)
    for props in alarms.values():
        assert props["Dimensions"][0]["Name"] == "FunctionName"
        assert (props["Statistic"], props["Threshold"]) == ("Sum", 0)


def test_http_api_5xx_raises_an_alarm() -> None:
    # HTTP APIs publish 5xx (not 5XXError, the REST API name) by ApiId
    alarms = alarms_on("AWS/ApiGateway", "5xx")
    assert set(alarms) == {"HttpApi"}
    assert alarms["HttpApi"]["Dimensions"][0]["Name"] == "ApiId"


# -------------------------------------------------------------------------- logs
def test_every_function_logs_to_its_own_log_group_with_retention() -> None:
    groups = []
    for function in FUNCTIONS:
        group = function_property(function, "LoggingConfig")["LogGroup"]["Ref"]
        props = RESOURCES[group]["Properties"]
        assert RESOURCES[group]["Type"] == "AWS::Logs::LogGroup"
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert props["LogGroupName"] == {
            "Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{function}"
        }
        groups.append(group)
    assert len(set(groups)) == len(FUNCTIONS)
    retention = TEMPLATE["Parameters"]["LogRetentionDays"]
    assert retention["Default"] in retention["AllowedValues"]


def test_the_http_api_writes_json_access_logs_and_throttles_its_default_route() -> None:
    # Given the HTTP API's access log settings
    props = RESOURCES["HttpApi"]["Properties"]
    settings = props["AccessLogSettings"]

    # Then each request is one short JSON line with what an incident needs, in a log group kept
    # LogRetentionDays
    assert settings["DestinationArn"] == {
        "Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]
    }
    line = json.loads(settings["Format"])
    assert {
        "id": "$context.requestId",
        "route": "$context.routeKey",
        "status": "$context.status",
        "ms": "$context.responseLatency",
        "fn_ms": "$context.integrationLatency",
        "fn": "$context.integrationStatus",
        "caller": "$context.authorizer.claims.sub",
    }.items() <= line.items()
    # (every byte is billed: short keys, and nothing CloudWatch records anyway, like the time)
    assert "requestTime" not in settings["Format"]
    assert RESOURCES["HttpApiAccessLogGroup"]["Properties"]["RetentionInDays"] == {
        "Ref": "LogRetentionDays"
    }
    # And the default route is throttled by parameters
    assert props["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }


def test_every_record_is_json_filtered_by_level_before_it_is_billed() -> None:
    # Lambda's advanced logging controls on every function: JSON, the application's level from
    # LogLevel (Lambda spells WARNING as WARN), the runtime's own records from SystemLogLevel
    config = GLOBAL_FUNCTION["LoggingConfig"]
    assert config == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": {
            "Fn::FindInMap": ["LambdaLogLevels", {"Ref": "LogLevel"}, "Level"]
        },
        "SystemLogLevel": {"Ref": "SystemLogLevel"},
    }
    levels = TEMPLATE["Mappings"]["LambdaLogLevels"]
    assert set(levels) == set(TEMPLATE["Parameters"]["LogLevel"]["AllowedValues"])
    assert {level["Level"] for level in levels.values()} <= {
        "TRACE",
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR",
        "FATAL",
    }
    assert TEMPLATE["Parameters"]["SystemLogLevel"]["Default"] == "WARN"
    # (each function names only its log group: SAM merges the rest in from Globals)
    assert all(
        set(fn["Properties"]["LoggingConfig"]) == {"LogGroup"}
        for fn in FUNCTIONS.values()
    )


def test_every_function_is_traced() -> None:
    # HTTP APIs have no X-Ray support of their own: tracing starts in the functions
    assert GLOBAL_FUNCTION["Tracing"] == "Active"
    assert all("Tracing" not in fn["Properties"] for fn in FUNCTIONS.values())


# ----------------------------------------------------------------------- checkov
def test_every_checkov_skip_says_why_in_one_line() -> None:
    # Given every check skipped in the template (tests/unit/test_checkov.py runs the rest)
    skips = [
        (name, skip)
        for name, resource in RESOURCES.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips

    for name, skip in skips:
        # Then each names one check and gives a one-line reason
        assert set(skip) == {"id", "comment"}, name
        assert re.fullmatch(r"CKV_AWS_\d+", skip["id"]), name
        assert skip["comment"].strip() and "\n" not in skip["comment"], name


# ------------------------------------------------------------------------- cfn-lint
def test_cfn_lint_finds_nothing() -> None:
    # When cfn-lint checks the template with its default rules (errors and warnings)
    matches = lint_file(TEMPLATE_PATH)

    # Then it has no findings
    assert [str(match) for match in matches] == []


# ----------------------------------------------------------------- never lose a job
def _settings_of(function: str) -> Settings:
    """The settings a function runs with: the template's variables over the defaults."""
    variables = {
        **TEMPLATE["Globals"]["Function"]["Environment"]["Variables"],
        **FUNCTIONS[function]["Properties"].get("Environment", {}).get("Variables", {}),
    }
    plain = {
        name.removeprefix("JOBLINE_").lower(): value
        for name, value in variables.items()
        if name.startswith("JOBLINE_AWS_") or name == "JOBLINE_DEADLINE_MARGIN_MS"
    }
    return Settings.model_validate(
        {"table_name": "jobs", "queue_url": "https://q", **plain}
    )


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_aws_call_with_all_its_retries_fits_in_the_function_timeout(
    function: str,
) -> None:
    # Given the function's timeout and its clients' timeouts and tries
    settings = _settings_of(function)
    timeout = FUNCTIONS[function]["Properties"]["Timeout"]

    # Then one AWS call that needs every try still ends before Lambda stops the function,
    # with time left for the rest of the request
    assert settings.aws_call_budget_s + 2 <= timeout, (
        settings.aws_call_budget_s,
        timeout,
    )


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_records_stop_starting_early_enough_for_their_last_write(function: str) -> None:
    # Given the margin before the deadline at which handlers are stopped and records no longer
    # start: the outcome write that follows must fit in it, whatever its retries
    settings = _settings_of(function)
    assert settings.deadline_margin_ms / 1000 >= settings.aws_call_budget_s
    assert (
        settings.deadline_margin_ms / 1000
        < FUNCTIONS[function]["Properties"]["Timeout"]
    )


def test_the_table_streams_every_write_to_the_outbox_dispatcher() -> None:
    # Given the jobs table and the function triggered by its stream
    assert TABLE["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    [(name, source)] = [
        (name, event["Properties"])
        for name, function in FUNCTIONS.items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "DynamoDB"
    ]

    # Then it reads the table's stream from its start, one shard invocation at a time,
    # reporting the records to hand over again, and bisecting a failing batch
    assert name == "OutboxFunction"
    assert source["Stream"] == {"Fn::GetAtt": ["JobsTable", "StreamArn"]}
    assert source["StartingPosition"] == "TRIM_HORIZON"
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["BisectBatchOnFunctionError"] is True
    assert source.get("ParallelizationFactor", 1) == 1
    # And it retries a failing batch until its records are hours old, well inside the 24 h the
    # stream keeps them, then hands the batch's place to a queue a function consumes
    assert source["MaximumRetryAttempts"] == -1
    assert 3600 <= source["MaximumRecordAgeInSeconds"] <= 12 * 3600
    destination = source["DestinationConfig"]["OnFailure"]
    assert destination["Type"] == "SQS"
    queue = destination["Destination"]["Fn::GetAtt"][0]
    consumers = [
        function for function, consumed, _ in sqs_sources() if consumed == queue
    ]
    assert consumers == ["OutboxRecoveryFunction"]
    assert (
        FUNCTIONS["OutboxRecoveryFunction"]["Properties"]["Handler"]
        == "jobline_outbox.recovery_handler.lambda_handler"
    )
    # And what the recovery cannot dispatch within an hour of receives goes to a DLQ (alarmed)
    policy = QUEUES[queue]["Properties"]["RedrivePolicy"]
    retention_s = QUEUES[queue]["Properties"]["MessageRetentionPeriod"]
    visibility_s = QUEUES[queue]["Properties"]["VisibilityTimeout"]
    window_s = (
        source["MaximumRecordAgeInSeconds"] + policy["maxReceiveCount"] * visibility_s
    )
    assert window_s < 24 * 3600 < retention_s


def test_only_the_outbox_sends_job_messages() -> None:
    # Given every role's grants
    senders = {
        function
        for function in FUNCTIONS
        if ("sqs:SendMessage", "JobsQueue") in granted(function)
    }

    # Then the API and the ingest function store rows; the outbox's functions send
    assert senders == {"OutboxFunction", "OutboxRecoveryFunction"}


def test_the_dashboard_shows_the_jobs_metrics_queues_functions_and_api() -> None:
    # Given the dashboard's body, its placeholders filled in
    body, names = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text = re.sub(r"\$\{([^}]+)\}", r"<\1>", body)
    widgets = json.loads(text)["widgets"]
    shown = json.dumps(widgets)

    # Then every metric the functions emit is on it, by job type ...
    for metric in sorted(COUNTS | DURATIONS):
        assert f'MetricName=\\"{metric}\\"' in shown, metric
    # ... every function's errors, every queue the functions read or fail to, and the API
    for function in FUNCTIONS:
        assert f"<{function}>" in shown, function
    placeholders = {name: value["Fn::GetAtt"][0] for name, value in names.items()}
    assert set(placeholders.values()) == set(QUEUES) - {"OutboxFailureDeadLetterQueue"}
    assert "<HttpApi>" in shown and '"5xx"' in shown and '"4xx"' in shown


def test_the_lanes_budgets_are_the_workers_timeouts_and_queues() -> None:
    # Given what every function is told about the lanes (jobline.lanes)
    variables = GLOBAL_FUNCTION["Environment"]["Variables"]

    # Then each lane's Timeout is its worker's, and its queue the one its worker polls
    assert int(variables["JOBLINE_WORKER_TIMEOUT_S"]) == function_property(
        "WorkerFunction", "Timeout"
    )
    assert int(variables["JOBLINE_LONG_WORKER_TIMEOUT_S"]) == function_property(
        "LongWorkerFunction", "Timeout"
    )
    assert variables["JOBLINE_QUEUE_URL"] == {"Ref": "JobsQueue"}
    assert variables["JOBLINE_LONG_QUEUE_URL"] == {"Ref": "LongJobsQueue"}
    polled = {fn: queue for fn, queue, _ in sqs_sources()}
    assert polled["WorkerFunction"] == "JobsQueue"
    assert polled["LongWorkerFunction"] == "LongJobsQueue"
    # And the long lane holds Lambda's longest invocation, its queue six of them
    assert function_property("LongWorkerFunction", "Timeout") == 900
    assert QUEUES["LongJobsQueue"]["Properties"]["VisibilityTimeout"] >= 6 * 900


# ----------------------------------------------------------------------- the data bucket
BUCKET = RESOURCES["JobDataBucket"]["Properties"]


def test_the_data_bucket_is_encrypted_private_and_owned_by_the_account() -> None:
    [rule] = BUCKET["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert BUCKET["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert BUCKET["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}
    ]
    assert RESOURCES["JobDataBucket"]["DeletionPolicy"] == "Retain"


def test_the_data_bucket_refuses_plain_http_and_old_tls() -> None:
    # Given the bucket's policy
    policy = RESOURCES["JobDataBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "JobDataBucket"}
    statements = policy["PolicyDocument"]["Statement"]

    # Then it denies every request, of anyone, to the bucket and its objects, without TLS or
    # with TLS older than 1.2
    everything = [
        {"Fn::GetAtt": ["JobDataBucket", "Arn"]},
        {"Fn::Sub": "${JobDataBucket.Arn}/*"},
    ]
    conditions = []
    for statement in statements:
        assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
            "Deny",
            "*",
            "s3:*",
        )
        assert statement["Resource"] == everything
        conditions.append(statement["Condition"])
    assert conditions == [
        {"Bool": {"aws:SecureTransport": "false"}},
        {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
    ]


def test_the_data_bucket_keeps_a_jobs_data_longer_than_the_job() -> None:
    # Given the bucket's lifecycle and the parameters it follows
    rules = {rule["Id"]: rule for rule in BUCKET["LifecycleConfiguration"]["Rules"]}
    retention = TEMPLATE["Parameters"]["RetentionDays"]
    expiry = TEMPLATE["Parameters"]["DataExpirationDays"]

    # Then payloads and results expire after DataExpirationDays, which is at least the jobs'
    # retention plus the margin (by default, and at the smallest retention), and what the
    # functions are told
    for prefix in ("payloads", "results"):
        assert rules[prefix]["Prefix"] == f"{prefix}/"
        assert rules[prefix]["ExpirationInDays"] == {"Ref": "DataExpirationDays"}
        assert rules[prefix]["Status"] == "Enabled"
    margin = limits.DATA_EXPIRY_MARGIN_DAYS
    assert expiry["Default"] == retention["Default"] + margin
    assert expiry["Default"] == Settings.model_fields["data_expiration_days"].default
    assert expiry["MinValue"] == retention["MinValue"] + margin
    assert expiry["MaxValue"] == retention["MaxValue"] + margin
    variables = GLOBAL_FUNCTION["Environment"]["Variables"]
    assert variables["JOBLINE_DATA_BUCKET"] == {"Ref": "JobDataBucket"}
    assert variables["JOBLINE_DATA_EXPIRATION_DAYS"] == {"Ref": "DataExpirationDays"}
    # And an upload nobody submitted goes after a day, as does an unfinished multipart upload
    assert rules["uploads"]["Prefix"] == "uploads/"
    assert rules["uploads"]["ExpirationInDays"] == limits.UPLOAD_RETENTION_DAYS
    assert rules["incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }


def test_every_key_the_claim_check_writes_is_under_a_lifecycle_rule() -> None:
    prefixes = {
        rule["Prefix"]
        for rule in BUCKET["LifecycleConfiguration"]["Rules"]
        if "ExpirationInDays" in rule
    }
    keys = [
        claim_check.payload_key("a" * 32, "0" * 64),
        claim_check.result_key("a" * 32, "b" * 32),
        claim_check.upload_key("alice", "c" * 32),
    ]
    for key in keys:
        assert any(key.startswith(prefix) for prefix in prefixes), key
