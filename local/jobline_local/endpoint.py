"""Clients and function environments on a local AWS endpoint (a moto server), shared by `make run`,
`make bench` and `make redrive --local`: dummy credentials, the endpoint, the region."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

DUMMY_CREDENTIAL = "jobline-local"
"""moto accepts any credentials; these make a local run recognisable in its requests."""


def local_client(
    service: str, endpoint: str, region: str, *, max_pool_connections: int = 10
) -> Any:
    """A boto3 client of `service` on the local endpoint (the caller's own, not the functions')."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=DUMMY_CREDENTIAL,
        aws_secret_access_key=DUMMY_CREDENTIAL,
        config=Config(max_pool_connections=max_pool_connections),
    )


def endpoint_environment(endpoint: str, region: str) -> dict[str, str]:
    """What points a function's clients at the local endpoint, as the Lambda runtime's variables
    would point them at AWS: the standard endpoint variable, credentials, the region."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIAL,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
