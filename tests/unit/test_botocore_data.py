"""The layer ships botocore with its data trimmed to the services Jobline calls
(`tools.artifact.trim_botocore_data`): every client Jobline creates, the ones the issues in
progress add, and the credential chain's, are created from the trimmed data exactly as from the
whole of it (same model, same endpoint in every partition), and nothing else is kept."""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from botocore.loaders import Loader
from botocore.session import Session
from jobline.aws import clients

from tools.artifact import (
    BOTOCORE_DATA_FILES,
    BOTOCORE_SERVICES,
    CLIENT_SERVICES,
    CREDENTIAL_SERVICES,
    PLANNED_SERVICES,
    trim_botocore_data,
)

BOTOCORE = metadata.distribution("botocore")
REGIONS = (
    "us-east-1",
    "eu-central-1",
    "ap-southeast-2",
    "cn-north-1",
    "us-gov-west-1",
    "us-iso-east-1",
)
"""One region or more of each partition a deployment could be in."""


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this venv's botocore data and RECORD, trimmed as the layer's build trims it."""
    site = tmp_path_factory.mktemp("site")
    installed = Path(str(BOTOCORE.locate_file("botocore")))
    shutil.copytree(installed / "data", site / "botocore" / "data")
    info = site / f"botocore-{BOTOCORE.version}.dist-info"
    info.mkdir()
    record = BOTOCORE.read_text("RECORD")
    assert record is not None
    (info / "RECORD").write_text(record)
    trim_botocore_data(site)
    return site


def session_on(data: Path | None) -> Session:
    """A botocore session whose models come from `data` only (None: botocore's own)."""
    session = Session()
    if data is not None:
        loader = Loader(
            extra_search_paths=[str(data)], include_default_search_paths=False
        )
        session.register_component("data_loader", loader)
    return session


def describe(session: Session, service: str, region: str) -> dict[str, Any]:
    client = session.create_client(
        service,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    model = client.meta.service_model
    return {
        "endpoint": client.meta.endpoint_url,
        "operations": model.operation_names,
        "api_version": model.api_version,
        "signing_name": model.signing_name,
    }


def test_the_client_services_are_the_ones_jobline_creates() -> None:
    # Given every client factory of the adapters
    created = {
        factory().meta.service_model.service_name for factory in clients.FACTORIES
    }

    # Then the layer ships exactly their models, besides the planned and credential ones
    assert created == CLIENT_SERVICES
    assert BOTOCORE_SERVICES == CLIENT_SERVICES | PLANNED_SERVICES | CREDENTIAL_SERVICES
    assert {"dynamodbstreams", "sts"} <= BOTOCORE_SERVICES


@pytest.mark.parametrize("service", sorted(BOTOCORE_SERVICES))
def test_every_shipped_client_is_created_from_the_trimmed_data_as_from_the_whole(
    trimmed: Path, service: str
) -> None:
    # Given botocore reading only the trimmed data, and botocore reading all of it
    data = trimmed / "botocore" / "data"
    small, whole = session_on(data), session_on(None)

    for region in REGIONS:
        # Then the client is the same: model, signing, and endpoint in every partition
        assert describe(small, service, region) == describe(whole, service, region), (
            region
        )


def test_nothing_else_is_kept(trimmed: Path) -> None:
    data = trimmed / "botocore" / "data"
    assert {p.name for p in data.iterdir() if p.is_dir()} == BOTOCORE_SERVICES
    assert {p.name for p in data.iterdir() if p.is_file()} == BOTOCORE_DATA_FILES
    # endpoints.json keeps every partition and its regions, with only the shipped services
    whole = json.loads(
        (
            Path(str(BOTOCORE.locate_file("botocore"))) / "data" / "endpoints.json"
        ).read_text()
    )
    kept = json.loads((data / "endpoints.json").read_text())
    assert [p["partition"] for p in kept["partitions"]] == [
        p["partition"] for p in whole["partitions"]
    ]
    for mine, theirs in zip(kept["partitions"], whole["partitions"], strict=True):
        assert mine["regions"] == theirs["regions"]
        assert set(mine["services"]) <= set(theirs["services"])
    keys = set().union(*(p["services"] for p in kept["partitions"]))
    assert {"dynamodb", "streams.dynamodb", "sqs", "ssm", "sts"} <= keys
    assert "ec2" not in keys


def test_the_distribution_record_lists_what_is_shipped(trimmed: Path) -> None:
    # Given the trimmed distribution's RECORD
    record = next(trimmed.glob("botocore-*.dist-info/RECORD")).read_text()
    data_lines = [
        line for line in record.splitlines() if line.startswith("botocore/data/")
    ]

    # Then each data file it lists is there (the others were dropped from it), and the rewritten
    # endpoints.json carries its new size
    assert data_lines
    assert all((trimmed / line.split(",")[0]).is_file() for line in data_lines)
    (endpoints,) = [
        line for line in data_lines if line.startswith("botocore/data/endpoints.json,")
    ]
    size = (trimmed / "botocore" / "data" / "endpoints.json").stat().st_size
    assert endpoints.endswith(f",{size}")


def test_an_artifact_without_botocore_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "pydantic").mkdir()
    trim_botocore_data(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["pydantic"]
