"""SSM Parameter Store adapter: the cursor key, a SecureString read once per execution environment.

Rotation is `aws ssm put-parameter --name NAME --type SecureString --overwrite --value NEW`: the
new version signs from the next cold start on, and for `grace` after the overwrite the previous
version (`NAME:<version - 1>`) is still accepted for reading, so cursors handed out just before the
rotation keep working. Outside the grace period this is one `GetParameter` call; within it, two.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from jobline.cursor import CursorKeys
from jobline.errors import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_ssm.client import SSMClient


def _get(client: SSMClient, name: str) -> dict[str, Any]:
    try:
        response = client.get_parameter(Name=name, WithDecryption=True)
    except (ClientError, BotoCoreError) as exc:
        code = (
            exc.response.get("Error", {}).get("Code", "")
            if isinstance(exc, ClientError)
            else type(exc).__name__
        )
        raise ConfigurationError(
            f"cannot read the cursor key from SSM parameter {name!r}: {code}"
        ) from exc
    parameter: dict[str, Any] = dict(response["Parameter"])
    return parameter


def read_cursor_keys(
    client: SSMClient, name: str, grace: timedelta, now: datetime
) -> CursorKeys:
    """The cursor keys in parameter `name`: its value signs; its previous version is accepted for
    reading until `grace` after the current one was written."""
    current = _get(client, name)
    if current.get("Type") != "SecureString":
        raise ConfigurationError(
            f"SSM parameter {name!r} holding the cursor key must be a SecureString"
        )
    version = int(current.get("Version", 1))
    written: datetime | None = current.get("LastModifiedDate")
    previous: tuple[bytes, ...] = ()
    if version > 1 and written is not None and now - written < grace:
        previous = (str(_get(client, f"{name}:{version - 1}")["Value"]).encode(),)
    return CursorKeys(str(current["Value"]).encode(), previous)
