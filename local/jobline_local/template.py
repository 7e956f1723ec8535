"""Read template.yaml and build its tables, queues and buckets on any endpoint (moto in-process or
server).

Resources are created from the template's own properties, so tests and `make run` cannot drift
from what `sam deploy` creates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags (`!Ref X` -> {"Ref": "X"})."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data, intrinsic functions kept as {"Ref"/"Fn::*": ...}."""
    with path.open() as handle:
        template: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)
    return template


def resources_of_type(
    template: dict[str, Any], resource_type: str
) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for one resource type."""
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


@dataclass(frozen=True)
class SqsTrigger:
    """An SQS event source of a function, as Lambda's event source mapping would run it."""

    function: str
    handler: str
    code_uri: str
    timeout_s: int
    queue: str
    batch_size: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None = None
    """`ScalingConfig.MaximumConcurrency`: at most this many invocations at once (None: not
    declared, Lambda's own limits apply)."""


def _parameter_value(template: dict[str, Any], value: Any) -> Any:
    """A property value with a `!Ref` to a template parameter resolved to the parameter's default
    (what a local run deploys with); None when it cannot be resolved locally."""
    if isinstance(value, dict):
        parameter = template.get("Parameters", {}).get(value.get("Ref"), {})
        return parameter.get("Default")
    return value


def _maximum_concurrency(
    template: dict[str, Any], source: dict[str, Any]
) -> int | None:
    value = _parameter_value(
        template, source.get("ScalingConfig", {}).get("MaximumConcurrency")
    )
    return None if value is None else int(value)


def _events(
    template: dict[str, Any], event_type: str
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], int]]:
    """(function, its properties, the event's properties, its timeout) of every event of
    `event_type` (SQS, DynamoDB...) of every function in the template."""
    globals_fn = template.get("Globals", {}).get("Function", {})
    for name, resource in resources_of_type(
        template, "AWS::Serverless::Function"
    ).items():
        props = resource["Properties"]
        timeout = int(props.get("Timeout", globals_fn.get("Timeout", 3)))
        for event in props.get("Events", {}).values():
            if event["Type"] == event_type:
                yield name, props, event["Properties"], timeout


def sqs_triggers(template: dict[str, Any]) -> list[SqsTrigger]:
    """Every SQS-triggered function in the template."""
    return [
        SqsTrigger(
            function=name,
            handler=props["Handler"],
            code_uri=props["CodeUri"],
            timeout_s=timeout,
            queue=source["Queue"]["Fn::GetAtt"][0],
            batch_size=int(source.get("BatchSize", 10)),
            report_batch_item_failures="ReportBatchItemFailures"
            in source.get("FunctionResponseTypes", []),
            maximum_concurrency=_maximum_concurrency(template, source),
        )
        for name, props, source, timeout in _events(template, "SQS")
    ]


@dataclass(frozen=True)
class StreamTrigger:
    """A DynamoDB stream event source of a function, as Lambda's event source mapping runs it."""

    function: str
    handler: str
    timeout_s: int
    table: str
    batch_size: int
    report_batch_item_failures: bool
    bisect_on_error: bool
    max_retry_attempts: int
    """-1: until the records are too old (`max_record_age_s`) or gone."""
    max_record_age_s: int
    """-1: as long as the stream keeps them."""
    on_failure_queue: str | None
    """Logical id of the queue the batches given up on go to (their location, not the records)."""


def stream_triggers(template: dict[str, Any]) -> list[StreamTrigger]:
    """Every DynamoDB-stream-triggered function in the template."""
    triggers = []
    for name, props, source, timeout in _events(template, "DynamoDB"):
        destination = (
            source.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        )
        triggers.append(
            StreamTrigger(
                function=name,
                handler=props["Handler"],
                timeout_s=timeout,
                table=source["Stream"]["Fn::GetAtt"][0],
                batch_size=int(source.get("BatchSize", 100)),
                report_batch_item_failures="ReportBatchItemFailures"
                in source.get("FunctionResponseTypes", []),
                bisect_on_error=bool(source.get("BisectBatchOnFunctionError", False)),
                max_retry_attempts=int(source.get("MaximumRetryAttempts", -1)),
                max_record_age_s=int(source.get("MaximumRecordAgeInSeconds", -1)),
                on_failure_queue=destination["Fn::GetAtt"][0] if destination else None,
            )
        )
    return triggers


def function_handler(template: dict[str, Any], function: str) -> str:
    """The `module.attribute` handler string of a function."""
    handler: str = template["Resources"][function]["Properties"]["Handler"]
    return handler


def table_request(
    template: dict[str, Any], logical_id: str, table_name: str
) -> dict[str, Any]:
    """CreateTable arguments from the table's template properties."""
    props = template["Resources"][logical_id]["Properties"]
    request: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "GlobalSecondaryIndexes" in props:
        request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if "StreamSpecification" in props:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            **props["StreamSpecification"],
        }
    return request


@dataclass(frozen=True)
class Provisioned:
    """What `provision` created: physical names by logical id."""

    tables: dict[str, str]
    queue_urls: dict[str, str]
    queue_arns: dict[str, str]
    stream_arns: dict[str, str] = field(default_factory=dict)
    """Table logical id -> the ARN of its stream (tables with a StreamSpecification)."""
    buckets: dict[str, str] = field(default_factory=dict)
    """Bucket logical id -> its name (when `provision` was given an S3 client)."""


def _queue_attributes(props: dict[str, Any], arns: dict[str, str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key, value in props.items():
        if key in ("QueueName", "Tags"):
            continue
        if key == "RedrivePolicy":
            target = value["deadLetterTargetArn"]
            if isinstance(target, dict):
                target = arns[target["Fn::GetAtt"][0]]
            value = {
                "deadLetterTargetArn": target,
                "maxReceiveCount": value["maxReceiveCount"],
            }
            attributes[key] = json.dumps(value)
        elif isinstance(value, bool):
            attributes[key] = "true" if value else "false"
        else:
            attributes[key] = str(value)
    return attributes


def bucket_name(prefix: str, logical_id: str) -> str:
    """A local bucket's name: S3's names are lowercase."""
    return f"{prefix}-{logical_id}".lower()


def lifecycle_rules(
    template: dict[str, Any], props: dict[str, Any]
) -> list[dict[str, Any]]:
    """A bucket's `LifecycleConfiguration` rules as PutBucketLifecycleConfiguration takes them
    (a `!Ref` to a parameter resolved to its default)."""
    rules = []
    for rule in props.get("LifecycleConfiguration", {}).get("Rules", []):
        request: dict[str, Any] = {
            "ID": rule["Id"],
            "Status": rule["Status"],
            "Filter": {"Prefix": rule.get("Prefix", "")},
        }
        if "ExpirationInDays" in rule:
            days = _parameter_value(template, rule["ExpirationInDays"])
            request["Expiration"] = {"Days": int(days)}
        if "AbortIncompleteMultipartUpload" in rule:
            request["AbortIncompleteMultipartUpload"] = rule[
                "AbortIncompleteMultipartUpload"
            ]
        rules.append(request)
    return rules


def provision_buckets(s3: Any, prefix: str, template: dict[str, Any]) -> dict[str, str]:
    """Create every bucket of the template with its encryption, public access block and
    lifecycle; idempotent. (Its bucket policy is not applied: it refuses plain HTTP, which is
    all a local endpoint speaks, and moto would not enforce it anyway.)"""
    buckets: dict[str, str] = {}
    for logical_id, resource in resources_of_type(template, "AWS::S3::Bucket").items():
        props = resource["Properties"]
        name = bucket_name(prefix, logical_id)
        existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
        if name not in existing:
            s3.create_bucket(Bucket=name)
        if "BucketEncryption" in props:
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": rule[
                        "ServerSideEncryptionByDefault"
                    ]
                }
                for rule in props["BucketEncryption"][
                    "ServerSideEncryptionConfiguration"
                ]
            ]
            s3.put_bucket_encryption(
                Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules}
            )
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"],
            )
        rules = lifecycle_rules(template, props)
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": rules}
            )
        buckets[logical_id] = name
    return buckets


def provision(
    dynamodb: Any,
    sqs: Any,
    prefix: str = "jobline-local",
    template: dict[str, Any] | None = None,
    s3: Any = None,
) -> Provisioned:
    """Create every table and queue of the template (dead-letter queues first), and with `s3`
    its buckets; idempotent."""
    template = template or load_template()
    tables: dict[str, str] = {}
    streams: dict[str, str] = {}
    for logical_id, resource in resources_of_type(
        template, "AWS::DynamoDB::Table"
    ).items():
        name = f"{prefix}-{logical_id}"
        existing = dynamodb.list_tables()["TableNames"]
        if name not in existing:
            dynamodb.create_table(**table_request(template, logical_id, name))
            ttl = resource["Properties"].get("TimeToLiveSpecification")
            if ttl:
                dynamodb.update_time_to_live(
                    TableName=name, TimeToLiveSpecification=ttl
                )
        tables[logical_id] = name
        stream = dynamodb.describe_table(TableName=name)["Table"].get("LatestStreamArn")
        if stream:
            streams[logical_id] = stream

    queues = resources_of_type(template, "AWS::SQS::Queue")
    ordered = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q]["Properties"])
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    for logical_id in ordered:
        props = queues[logical_id]["Properties"]
        url = sqs.create_queue(
            QueueName=f"{prefix}-{logical_id}",
            Attributes=_queue_attributes(props, arns),
        )["QueueUrl"]
        urls[logical_id] = url
        arns[logical_id] = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
    buckets = {} if s3 is None else provision_buckets(s3, prefix, template)
    return Provisioned(
        tables=tables,
        queue_urls=urls,
        queue_arns=arns,
        stream_arns=streams,
        buckets=buckets,
    )


def function_environment(
    template: dict[str, Any],
    provisioned: Provisioned,
    function: str | None = None,
) -> dict[str, str]:
    """The environment the template gives a function (Globals, then the function's own variables).

    `!Ref` to a provisioned table, queue or bucket becomes its name or URL (as CloudFormation
    resolves it),
    `!Ref` to a parameter becomes the parameter's default; a value that cannot be resolved locally
    (a parameter without a default, any other intrinsic) is left out, so the setting's own default
    applies.
    """
    variables: dict[str, Any] = dict(
        template.get("Globals", {})
        .get("Function", {})
        .get("Environment", {})
        .get("Variables", {})
    )
    if function is not None:
        props = template["Resources"][function]["Properties"]
        variables.update(props.get("Environment", {}).get("Variables", {}))
    parameters = template.get("Parameters", {})
    environment: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, dict):
            ref = value.get("Ref")
            if ref in provisioned.tables:
                environment[name] = provisioned.tables[ref]
            elif ref in provisioned.buckets:
                environment[name] = provisioned.buckets[ref]
            elif ref in provisioned.queue_urls:
                environment[name] = provisioned.queue_urls[ref]
            elif ref in parameters and "Default" in parameters[ref]:
                environment[name] = str(parameters[ref]["Default"])
        elif isinstance(value, bool):
            environment[name] = "true" if value else "false"
        elif value is not None:
            environment[name] = str(value)
    return environment
