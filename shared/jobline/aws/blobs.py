"""S3 adapter of the data bucket (`BlobStore`): payloads and results too large for a job's item,
and the presigned URLs and upload forms callers use to reach them without AWS credentials.

Every object is JSON (`application/json`), written with its SHA-256 so that S3 refuses bytes that
are not the ones hashed (`ChecksumSHA256`). The bucket encrypts at rest and refuses plain HTTP
(template.yaml, `JobDataBucket`). ClientError codes become domain errors here: a missing key
`DataNotFound`, throttling and S3's own failures `StorageUnavailable`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from jobline.errors import DataNotFound, DataTooLarge, StorageUnavailable
from jobline.logging import get_logger

log = get_logger(__name__)

CONTENT_TYPE = "application/json"
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_TRANSIENT = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "503",
        "500",
    }
)


class S3Client(Protocol):
    """The calls this adapter makes of botocore's S3 client (and what `jobline.aws.clients`
    uses of every client)."""

    meta: Any

    def close(self) -> None: ...

    def put_object(self, **kwargs: Any) -> Any: ...

    def get_object(self, **kwargs: Any) -> Any: ...

    def copy_object(self, **kwargs: Any) -> Any: ...

    def generate_presigned_url(
        self, ClientMethod: str, Params: dict[str, Any], ExpiresIn: int
    ) -> str: ...

    def generate_presigned_post(
        self,
        Bucket: str,
        Key: str,
        Fields: dict[str, Any] | None = None,
        Conditions: list[Any] | None = None,
        ExpiresIn: int = 3600,
    ) -> dict[str, Any]: ...


def _translate(exc: ClientError | BotoCoreError, operation: str, key: str) -> Exception:
    if isinstance(exc, BotoCoreError):
        return StorageUnavailable(f"{operation}: {type(exc).__name__}")
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in _MISSING:
        return DataNotFound(key)
    if code in _TRANSIENT:
        return StorageUnavailable(f"{operation}: {code}")
    return exc


def checksum(sha256: str) -> str:
    """S3's `ChecksumSHA256`: the digest as base64 (ours is hex)."""
    return base64.b64encode(bytes.fromhex(sha256)).decode()


def put_request(bucket: str, key: str, data: bytes, sha256: str) -> dict[str, Any]:
    """PutObject of one JSON document, checked by S3 against its SHA-256."""
    return {
        "Bucket": bucket,
        "Key": key,
        "Body": data,
        "ContentType": CONTENT_TYPE,
        "ChecksumSHA256": checksum(sha256),
    }


def touch_request(bucket: str, key: str) -> dict[str, Any]:
    """CopyObject of an object onto itself (S3 requires a change: the metadata is replaced by
    the same), which gives it a new last-modified date for the lifecycle to count from."""
    return {
        "Bucket": bucket,
        "Key": key,
        "CopySource": {"Bucket": bucket, "Key": key},
        "MetadataDirective": "REPLACE",
        "ContentType": CONTENT_TYPE,
    }


class S3BlobStore:
    """The data bucket, through a botocore client created once per execution environment."""

    def __init__(self, client: S3Client | Callable[[], S3Client], bucket: str) -> None:
        """`client` is the client, or the (cached) function that creates it on first use: a
        function that never stores large data never builds one."""
        self._connect: Callable[[], S3Client] = (
            client if callable(client) else lambda: client
        )
        self.bucket = bucket

    @property
    def _client(self) -> S3Client:
        return self._connect()

    def put(self, key: str, data: bytes, sha256: str) -> None:
        """Store `data` under `key` (S3 checks it against `sha256`)."""
        try:
            self._client.put_object(**put_request(self.bucket, key, data, sha256))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "put", key) from exc
        log.debug("data.stored", key=key, size=len(data))

    def get(self, key: str, max_bytes: int) -> bytes:
        """The object's bytes (`DataTooLarge`, unread, when it is over `max_bytes`)."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "get", key) from exc
        body = response["Body"]
        size = int(response.get("ContentLength", 0))
        if size > max_bytes:
            body.close()
            raise DataTooLarge(size, max_bytes)
        try:
            data: bytes = body.read()
        except BotoCoreError as exc:  # the stream broke off
            raise _translate(exc, "get", key) from exc
        return data

    def touch(self, key: str) -> None:
        """Rewrite the object in place: the lifecycle counts its days from now."""
        try:
            self._client.copy_object(**touch_request(self.bucket, key))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "touch", key) from exc

    def download_url(self, key: str, expires_in_s: int) -> str:
        """A presigned GET of the object (signed here: no call to S3)."""
        return self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=expires_in_s,
        )

    def upload_form(
        self, key: str, max_bytes: int, expires_in_s: int
    ) -> tuple[str, dict[str, str]]:
        """A presigned POST policy for `key`, which S3 enforces: that key only, 1 to
        `max_bytes` bytes, until it expires (signed here: no call to S3)."""
        form = self._client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in_s,
        )
        return str(form["url"]), {name: str(v) for name, v in form["fields"].items()}
