"""template.yaml as CloudFormation deploys it: expanded by the SAM transform (samtranslator, the
code CloudFormation runs for `Transform: AWS::Serverless-2016-10-31`, run by tools/sam_transform.py
in its own venv: `make test` installs it), with code locations as `sam package` writes them
(s3:// URIs of the zipped build folders).

What only the expanded template shows: which deploys publish a new version behind the API's `live`
alias, what the roles SAM would otherwise generate may do, and the resources SAM creates (event
source mappings, the HTTP API stage)."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from jobline_local.template import REPO_ROOT, load_template

BUCKET = "jobline-artifacts"
DEPLOYED = {"CursorSecretParameterName": "/jobline/test/cursor-secret"}
"""Parameter values of every deploy here (the one without a default; see samconfig.toml)."""
LAYER_V1 = f"s3://{BUCKET}/SharedLayer-v1.zip"
LAYER_V2 = f"s3://{BUCKET}/SharedLayer-v2.zip"
SOURCE = load_template()

XRAY_WRITE = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
"""The one grant on every resource: X-Ray's trace upload actions support no resource-level
permissions (IAM accepts only `Resource: "*"` for them), and Tracing is Active."""
SQS_POLLING = frozenset(
    {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
)
"""What an SQS event source mapping does with the function's role."""


SAM_TRANSLATOR_PYTHON = REPO_ROOT / ".venv-sam-translator" / "bin" / "python"
SAM_TRANSFORM = REPO_ROOT / "tools" / "sam_transform.py"


def sam_transform(template: dict[str, Any], parameters: dict[str, str]) -> Any:
    """The template as the SAM transform expands it (tools/sam_transform.py, in its venv)."""
    if not SAM_TRANSLATOR_PYTHON.exists():
        pytest.fail(
            "the SAM translator's venv is missing: `make .venv-sam-translator/.installed` "
            "(make test and make pytest install it)"
        )
    completed = subprocess.run(
        [str(SAM_TRANSLATOR_PYTHON), "-I", str(SAM_TRANSFORM)],
        input=json.dumps({"template": template, "parameters": parameters}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def packaged(layer_uri: str, api_code_uri: str) -> dict[str, Any]:
    """The template as `sam package` uploads it: every CodeUri/ContentUri an S3 object."""
    template = load_template()
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if "CodeUri" in props:
            props["CodeUri"] = f"s3://{BUCKET}/{logical_id}.zip"
        if "ContentUri" in props:
            props["ContentUri"] = layer_uri
    template["Resources"]["ApiFunction"]["Properties"]["CodeUri"] = api_code_uri
    return template


@functools.cache
def _transformed(
    parameters: tuple[tuple[str, str], ...], layer_uri: str, api_code_uri: str
) -> dict[str, Any]:
    expanded: dict[str, Any] = sam_transform(
        packaged(layer_uri, api_code_uri), dict(parameters)
    )
    return expanded


def transformed(
    parameters: dict[str, str] | None = None,
    layer_uri: str = LAYER_V1,
    api_code_uri: str = f"s3://{BUCKET}/ApiFunction.zip",
) -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes (cached per input)."""
    return _transformed(
        tuple(sorted({**DEPLOYED, **(parameters or {})}.items())),
        layer_uri,
        api_code_uri,
    )


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def api_version(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The API function's one AWS::Lambda::Version, and the `live` alias's pointer to it."""
    versions = {
        name: resource
        for name, resource in of_type(template, "AWS::Lambda::Version").items()
        if resource["Properties"]["FunctionName"] == {"Ref": "ApiFunction"}
    }
    ((name, version),) = versions.items()
    (alias,) = of_type(template, "AWS::Lambda::Alias").values()
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [name, "Version"]}
    return name, version


class Resolver:
    """CloudFormation's own resolution, for what these tests compare: parameter Refs (given
    values, else defaults; a CommaDelimitedList's as a list), Fn::Sub of parameters, Fn::Join,
    Fn::Split, Fn::If on the template's conditions."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        specs = template.get("Parameters", {})
        defaults = {
            name: str(spec["Default"])
            for name, spec in specs.items()
            if "Default" in spec
        }
        self.parameters = {**defaults, **parameters}
        self.lists = {
            name for name, spec in specs.items() if spec["Type"] == "CommaDelimitedList"
        }
        self.conditions = template.get("Conditions", {})

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and arg in self.lists:
                return self.parameters[arg].split(",")
            if key == "Ref" and arg in self.parameters:
                return self.parameters[arg]
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(self(items))
            if key == "Fn::Split":
                delimiter, text = arg
                return self(text).split(delimiter)
            if key == "Fn::Sub" and isinstance(arg, str):
                return re.sub(
                    r"\$\{([^}]+)\}",
                    lambda match: self.parameters.get(match[1], match[0]),
                    arg,
                )
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (str(self(item)) for item in arg)
                return left == right
            if key == "Fn::Not":
                return not self(arg[0])
        return {key: self(item) for key, item in value.items()}

    def condition(self, name: str) -> bool:
        return bool(self(self.conditions[name]))


def iam_statements(
    template: dict[str, Any], parameters: dict[str, str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource, statement) for every IAM statement of every role and policy, a conditional
    policy's (`!If`) as deployed with `parameters` (default: DEPLOYED's)."""
    resolve = Resolver(template, {**DEPLOYED, **(parameters or {})})
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        policies = [
            resolve({"Fn::If": policy["Fn::If"]}) if "Fn::If" in policy else policy
            for policy in props.get("Policies", [])
        ]
        documents = [
            policy["PolicyDocument"]
            for policy in policies
            if policy != {"Ref": "AWS::NoValue"}
        ]
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        for document in documents:
            statements = document["Statement"]
            for statement in (
                statements if isinstance(statements, list) else [statements]
            ):
                yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_of(template: dict[str, Any], function: str) -> str:
    role = template["Resources"][function]["Properties"]["Role"]
    assert role["Fn::GetAtt"][1] == "Arn"
    name: str = role["Fn::GetAtt"][0]
    return name


def grants(
    template: dict[str, Any], role: str, parameters: dict[str, str] | None = None
) -> set[tuple[str, str]]:
    """(action, resource) pairs a role allows, resources as the template writes them."""
    allowed = set()
    for resource, statement in iam_statements(template, parameters):
        if resource != role:
            continue
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            for target in as_list(statement["Resource"]):
                allowed.add((action, repr(target)))
    return allowed


# -------------------------------------------------------------------- versions
def test_a_layer_only_change_publishes_a_new_api_version() -> None:
    # Given two deploys that differ only in the shared layer's code
    before, _ = api_version(transformed(layer_uri=LAYER_V1))
    after, _ = api_version(transformed(layer_uri=LAYER_V2))

    # Then the second publishes a new version (a new logical id) and the `live` alias moves to it
    assert before != after


def test_a_code_change_publishes_a_new_api_version() -> None:
    before, _ = api_version(transformed())
    after, _ = api_version(
        transformed(api_code_uri=f"s3://{BUCKET}/ApiFunction-v2.zip")
    )
    assert before != after


def test_a_deploy_that_changes_nothing_publishes_no_version() -> None:
    # Given the same inputs transformed twice (uncached)
    first = sam_transform(packaged(LAYER_V1, f"s3://{BUCKET}/A.zip"), dict(DEPLOYED))
    second = sam_transform(packaged(LAYER_V1, f"s3://{BUCKET}/A.zip"), dict(DEPLOYED))

    # Then the version is the same resource: nothing is published
    assert api_version(first)[0] == api_version(second)[0]


@pytest.mark.parametrize("snapstart", ["true", "false"])
def test_toggling_snapstart_publishes_a_new_api_version(snapstart: str) -> None:
    # Given the same code deployed with SnapStart switched, from the other value to this one
    other = {"true": "false", "false": "true"}[snapstart]
    templates = {
        value: transformed({"EnableSnapStart": value}) for value in (snapstart, other)
    }

    # When CloudFormation resolves the version and the function for each deploy
    def deployed(value: str) -> tuple[str, Any, Any]:
        template = templates[value]
        resolve = Resolver(template, {**DEPLOYED, "EnableSnapStart": value})
        name, version = api_version(template)
        function = template["Resources"]["ApiFunction"]["Properties"]
        return name, resolve(version["Properties"]), resolve(function["SnapStart"])

    now, before = deployed(snapstart), deployed(other)

    # Then the function's SnapStart setting follows the parameter ...
    assert now[2] == {"ApplyOn": "PublishedVersions" if snapstart == "true" else "None"}
    # ... and the version is a new one: a new logical id, or a changed Description, which
    # CloudFormation cannot update in place (AWS::Lambda::Version: "Update requires:
    # Replacement"), so it publishes the function again, now with (or without) its snapshot.
    # SAM hashes the function's properties with the !If unresolved, so the logical id alone
    # cannot tell; the description names the switch.
    assert (now[0], now[1]) != (before[0], before[1])
    assert now[1]["Description"] != before[1]["Description"]


# ------------------------------------------------------------------------- IAM
def test_no_iam_statement_grants_every_resource_but_xray_trace_upload() -> None:
    # Given every IAM statement of the deployed template
    statements = list(iam_statements(transformed()))
    assert statements

    for resource, statement in statements:
        # Then each names its resources, except X-Ray's trace upload (see XRAY_WRITE)
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= XRAY_WRITE, resource


@pytest.mark.parametrize(
    "targets",
    [
        "",
        "arn:aws:lambda:eu-west-1:123456789012:function:resize",
        "arn:aws:lambda:eu-west-1:123456789012:function:resize,"
        "arn:aws:lambda:eu-west-1:210987654321:function:ocr:live",
    ],
    ids=["none", "one", "two"],
)
def test_the_workers_may_invoke_exactly_the_job_target_functions(targets: str) -> None:
    # Given a deploy naming these functions as job types' targets (JobTargetArns)
    parameters = {"JobTargetArns": targets}
    template = transformed(parameters)
    resolve = Resolver(template, {**DEPLOYED, **parameters})

    # When the grants of every role are read as CloudFormation resolves them
    invoking = {
        resource: resolve(statement["Resource"])
        for resource, statement in iam_statements(template, parameters)
        if any(action.startswith("lambda:") for action in as_list(statement["Action"]))
    }

    # Then only the workers (both lanes) may invoke functions: each named one, and its aliases
    # and versions (ARN:*), with lambda:InvokeFunction alone; none when the parameter names none
    arns = [arn for arn in targets.split(",") if arn]
    if not arns:
        assert invoking == {}
        return
    workers = ("WorkerFunction", "LongWorkerFunction")
    assert set(invoking) == {role_of(template, worker) for worker in workers}
    for worker in workers:
        assert sorted(invoking[role_of(template, worker)]) == sorted(
            [*arns, *(f"{arn}:*" for arn in arns)]
        )
        assert {
            action
            for action, _ in grants(template, f"{worker}Role", parameters)
            if action.startswith("lambda:")
        } == {"lambda:InvokeFunction"}


def test_no_role_attaches_a_managed_policy() -> None:
    # Given every role of the deployed template
    roles = of_type(transformed(), "AWS::IAM::Role")
    assert set(roles) == {
        "ApiFunctionRole",
        "WorkerFunctionRole",
        "LongWorkerFunctionRole",
        "IngestFunctionRole",
        "DeadLetterFunctionRole",
        "OutboxFunctionRole",
        "OutboxRecoveryFunctionRole",
    }

    # Then none attaches a managed policy: those SAM adds (AWSLambdaBasicExecutionRole,
    # AWSLambdaSQSQueueExecutionRole, AWSXrayWriteOnlyAccess) grant every resource
    assert {
        name: role["Properties"].get("ManagedPolicyArns")
        for name, role in roles.items()
    } == {name: None for name in roles}


def test_every_function_has_a_role_of_its_own() -> None:
    template = transformed()
    functions = of_type(template, "AWS::Lambda::Function")
    roles = [role_of(template, name) for name in functions]
    assert sorted(roles) == sorted(f"{name}Role" for name in functions)


def test_sqs_event_sources_poll_only_their_queue_at_bounded_concurrency() -> None:
    # Given every event source mapping the transform made
    template = transformed()
    mappings = {
        name: mapping
        for name, mapping in of_type(
            template, "AWS::Lambda::EventSourceMapping"
        ).items()
        if "StreamArn" not in repr(mapping["Properties"]["EventSourceArn"])
    }
    assert len(mappings) == 6
    queues: dict[str, set[str]] = {}
    for mapping in mappings.values():
        props = mapping["Properties"]
        queues.setdefault(props["FunctionName"]["Ref"], set()).add(
            repr(props["EventSourceArn"])
        )

    for mapping in mappings.values():
        props = mapping["Properties"]
        function = props["FunctionName"]["Ref"]

        # Then the function's role may poll exactly its queues (one per lane for the
        # dead-letter consumer) ...
        polled = {
            (action, target)
            for action, target in grants(template, role_of(template, function))
            if action in SQS_POLLING
        }
        assert polled == {
            (action, queue) for action in SQS_POLLING for queue in queues[function]
        }, function
        # ... and the mapping runs at most a parameter's worth of invocations (>= 2, AWS's floor)
        concurrency = props["ScalingConfig"]["MaximumConcurrency"]["Ref"]
        assert template["Parameters"][concurrency]["MinValue"] >= 2


def test_every_function_logs_only_to_its_own_log_group() -> None:
    # Given every function of the deployed template
    template = transformed()
    for name, function in of_type(template, "AWS::Lambda::Function").items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = template["Resources"][group]

        # Then it writes to a log group of the template, kept LogRetentionDays ...
        assert log_group["Type"] == "AWS::Logs::LogGroup"
        assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        # ... which is the only one its role may write to (and it may create none)
        logs = {
            pair
            for pair in grants(template, role_of(template, name))
            if pair[0].startswith("logs:")
        }
        arn = repr({"Fn::GetAtt": [group, "Arn"]})
        assert logs == {("logs:CreateLogStream", arn), ("logs:PutLogEvents", arn)}
        # ... and it is traced
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}
        # ... and its records are JSON, filtered by level (Globals merged with its log group)
        assert function["Properties"]["LoggingConfig"] == {
            "LogGroup": {"Ref": group},
            "LogFormat": "JSON",
            "ApplicationLogLevel": {
                "Fn::FindInMap": ["LambdaLogLevels", {"Ref": "LogLevel"}, "Level"]
            },
            "SystemLogLevel": {"Ref": "SystemLogLevel"},
        }


# -------------------------------------------------------------------- HTTP API
def test_the_http_api_stage_logs_every_request_and_throttles_the_default_route() -> (
    None
):
    # Given the HTTP API's stage
    (stage,) = of_type(transformed(), "AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]

    # Then it writes access logs to the template's log group and throttles by parameters
    assert props["AccessLogSettings"]["DestinationArn"] == {
        "Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]
    }
    assert props["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
