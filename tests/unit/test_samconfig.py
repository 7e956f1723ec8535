"""samconfig.toml: `sam deploy --config-env ENV` deploys without asking for a value and without a
value it lacks (it asks only to confirm the change set): every template parameter has a default or
an override, every override is a parameter the template declares, with a value the parameter accepts."""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import Any

import pytest
from jobline.limits import DATA_EXPIRY_MARGIN_DAYS
from jobline_local.template import REPO_ROOT, load_template, resources_of_type

TEMPLATE = load_template()
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]
with (REPO_ROOT / "samconfig.toml").open("rb") as handle:
    SAMCONFIG = tomllib.load(handle)
ENVIRONMENTS = sorted(
    name for name, env in SAMCONFIG.items() if isinstance(env, dict) and "deploy" in env
)


def deploy(env: str) -> dict[str, Any]:
    parameters: dict[str, Any] = SAMCONFIG[env]["deploy"]["parameters"]
    return parameters


def overrides(env: str) -> dict[str, str]:
    """`parameter_overrides` (a string of Key="value" pairs, or a list of them) as a dict."""
    raw = deploy(env).get("parameter_overrides", "")
    items = raw if isinstance(raw, list) else shlex.split(raw)
    pairs = [item.split("=", 1) for item in items]
    assert all(len(pair) == 2 for pair in pairs), raw
    return dict(pairs)


def test_there_is_a_default_and_a_prod_environment() -> None:
    assert ENVIRONMENTS == ["default", "prod"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_parameter_without_a_default_is_set(env: str) -> None:
    # Given the parameters a deploy cannot do without
    required = {name for name, spec in PARAMETERS.items() if "Default" not in spec}

    # Then the environment's overrides set each of them
    assert required <= set(overrides(env))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_override_is_a_parameter_with_a_value_it_accepts(env: str) -> None:
    for name, value in overrides(env).items():
        # Then the template declares it (a typo would be ignored by nobody but CloudFormation)
        assert name in PARAMETERS, name
        spec = PARAMETERS[name]
        # And the value passes the parameter's constraints
        if "AllowedValues" in spec:
            assert value in [str(allowed) for allowed in spec["AllowedValues"]], name
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), name
        if spec["Type"] == "Number":
            number = float(value)
            assert (
                spec.get("MinValue", number) <= number <= spec.get("MaxValue", number)
            ), name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_non_guided_deploy_has_what_it_needs(env: str) -> None:
    # Given the environment's deploy settings
    settings = deploy(env)

    # Then the stack, its region and an artifact bucket are known, and IAM resources may be made
    # (the template names no role, so CAPABILITY_IAM is enough)
    assert SAMCONFIG[env]["global"]["parameters"]["stack_name"]
    assert settings["region"]
    assert settings["resolve_s3"] is True
    assert settings["capabilities"] == "CAPABILITY_IAM"
    roles = resources_of_type(TEMPLATE, "AWS::IAM::Role")
    assert roles and all(
        "RoleName" not in role["Properties"] for role in roles.values()
    )


def test_each_environment_reads_a_cursor_secret_of_its_own() -> None:
    names = [overrides(env)["CursorSecretParameterName"] for env in ENVIRONMENTS]
    assert len(set(names)) == len(names)


def test_snapstart_is_on_in_prod_only() -> None:
    # prod's API versions are snapshotted (docs/benchmarks.md: its costs, the hooks); the default
    # environment keeps the template's default, off
    assert overrides("prod")["EnableSnapStart"] == "true"
    assert "EnableSnapStart" not in overrides("default")
    assert PARAMETERS["EnableSnapStart"]["Default"] == "false"


def test_the_jwt_defaults_match_no_real_issuer() -> None:
    # A first deploy without JwtIssuer/JwtAudience succeeds and accepts no token: the issuer's
    # host is under .invalid (RFC 2606), which never resolves
    issuer = PARAMETERS["JwtIssuer"]["Default"]
    assert re.fullmatch(r"https://[a-z0-9-]+\.invalid", issuer)
    assert re.fullmatch(PARAMETERS["JwtIssuer"]["AllowedPattern"], issuer)
    assert "not-configured" in PARAMETERS["JwtAudience"]["Default"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_keeps_job_data_as_long_as_its_jobs(env: str) -> None:
    # Given the environment's retention and data expiry (its override, else the default)
    def value(name: str) -> int:
        return int(overrides(env).get(name, PARAMETERS[name]["Default"]))

    # Then the data bucket keeps a job's payload and result the margin longer than the job
    # (the functions refuse to start otherwise: jobline.config)
    assert (
        value("DataExpirationDays") >= value("RetentionDays") + DATA_EXPIRY_MARGIN_DAYS
    )
