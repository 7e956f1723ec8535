"""template.yaml as CloudFormation deploys it: expanded by the SAM transform (samtranslator, the
code CloudFormation runs for `Transform: AWS::Serverless-2016-10-31`), with code locations as
`sam package` writes them (s3:// URIs of the zipped build folders).

What only the expanded template shows: which deploys publish a new version behind the API's `live`
alias."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
from jobline_local.template import load_template
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

BUCKET = "jobline-artifacts"
DEPLOYED = {"CursorSecret": "unit-test-cursor-secret-0123456789abcdef"}
"""Parameter values of every deploy here (the one without a default)."""
LAYER_V1 = f"s3://{BUCKET}/SharedLayer-v1.zip"
LAYER_V2 = f"s3://{BUCKET}/SharedLayer-v2.zip"
SOURCE = load_template()


class NoManagedPolicies(ManagedPolicyLoader):
    """SAM maps AWS managed policy names to ARNs (through IAM) only for names listed in a
    function's `Policies`; the template lists none, so no lookup happens."""

    def __init__(self) -> None:  # no IAM client
        pass

    def load(self) -> dict[str, str]:
        return {}


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
    expanded: dict[str, Any] = transform(
        packaged(layer_uri, api_code_uri), dict(parameters), NoManagedPolicies()
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
    values, else defaults), Fn::Sub of parameters, Fn::If on the template's conditions."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        defaults = {
            name: str(spec["Default"])
            for name, spec in template.get("Parameters", {}).items()
            if "Default" in spec
        }
        self.parameters = {**defaults, **parameters}
        self.conditions = template.get("Conditions", {})

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and arg in self.parameters:
                return self.parameters[arg]
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
    first = transform(
        packaged(LAYER_V1, f"s3://{BUCKET}/A.zip"), dict(DEPLOYED), NoManagedPolicies()
    )
    second = transform(
        packaged(LAYER_V1, f"s3://{BUCKET}/A.zip"), dict(DEPLOYED), NoManagedPolicies()
    )

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
