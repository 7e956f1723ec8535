"""SSM Parameter Store adapter: the cursor key, a SecureString read once per execution environment
(when a cursor is first signed or read; with SnapStart, once per published version).

Rotation is `aws ssm put-parameter --name NAME --type SecureString --overwrite --value NEW`: the
new version signs from the next execution environment on (with SnapStart, the next published
version), and for `grace` after the overwrite the previous
version (`NAME:<version - 1>`) is still accepted for reading, so cursors handed out just before the
rotation keep working. Outside the grace period this is one `GetParameter` call; within it, two.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from jobline.config import Settings
from jobline.cursor import DEVELOPMENT_KEY, CursorKeys, weak_key_problem
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


def load_cursor_keys(
    settings: Settings,
    ssm: Callable[[], SSMClient],
    clock: Callable[[], datetime],
) -> CursorKeys:
    """The cursor keys a deployment's settings name: from SSM Parameter Store when
    `cursor_secret_parameter` is set (current, and previous within the rotation's grace period),
    else `cursor_secret` (`cursor_secret_previous` is accepted for reading either way), else the
    public development key. On Lambda, a weak key (`weak_key_problem`) is a ConfigurationError:
    no cursor is signed or read with it."""
    previous = tuple(
        secret.get_secret_value().encode()
        for secret in (settings.cursor_secret_previous,)
        if secret is not None
    )
    if settings.cursor_secret_parameter is not None:
        stored = read_cursor_keys(
            ssm(),
            settings.cursor_secret_parameter,
            timedelta(seconds=settings.cursor_rotation_grace_s),
            clock(),
        )
        keys = CursorKeys(stored.current, stored.previous + previous)
    elif settings.cursor_secret is not None:
        keys = CursorKeys(settings.cursor_secret.get_secret_value().encode(), previous)
    else:
        keys = CursorKeys(DEVELOPMENT_KEY, previous)
    if settings.function_name is not None:
        for role, key in [("cursor key", keys.current)] + [
            ("previous cursor key", key) for key in keys.previous
        ]:
            problem = weak_key_problem(key)
            if problem is not None:
                raise ConfigurationError(
                    f"refusing cursors on Lambda: the {role} {problem} (store a random key "
                    "of 32+ bytes as an SSM SecureString named by "
                    "JOBLINE_CURSOR_SECRET_PARAMETER)"
                )
    return keys
