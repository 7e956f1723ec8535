"""A snapshot of the local stack's tables, queues and job data, read through the endpoint, and the
JSON file it is kept in between two runs (`jobline_local.state` says what goes in it and why)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobline_local.template import Provisioned

VERSION = 1
"""The file's format; a file of another version is refused (start with `FRESH=1`)."""
MAX_RECEIVE = 10
DRAIN_VISIBILITY_S = 43_200
"""While a snapshot drains a queue, a received message stays hidden: each is read once."""


class StateError(RuntimeError):
    """The saved state cannot be read or put back: what is wrong, and where."""


KEPT_PREFIXES = ("payloads/", "results/")
"""The data bucket's objects a snapshot keeps: the jobs' (uploads no submit named are not)."""


@dataclass(frozen=True)
class Snapshot:
    """Items by table, messages by queue and objects by bucket (logical ids of template.yaml)."""

    tables: dict[str, list[dict[str, Any]]]
    queues: dict[str, list[dict[str, Any]]]
    saved_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )
    objects: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """Bucket -> key -> bytes: the jobs' payloads and results kept in the data bucket."""


def _scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return items


def _drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every visible message of a queue (body and message attributes), each received once."""
    messages: list[dict[str, Any]] = []
    while True:
        received = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=MAX_RECEIVE,
            WaitTimeSeconds=0,
            VisibilityTimeout=DRAIN_VISIBILITY_S,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return messages
        for message in received:
            kept: dict[str, Any] = {"MessageBody": message["Body"]}
            attributes = {
                name: {
                    key: value[key]
                    for key in ("DataType", "StringValue", "BinaryValue")
                    if key in value
                }
                for name, value in message.get("MessageAttributes", {}).items()
            }
            if attributes:
                kept["MessageAttributes"] = attributes
            messages.append(kept)


def _objects(s3: Any, bucket: str) -> dict[str, bytes]:
    """The bucket's objects under `KEPT_PREFIXES`, read whole."""
    objects: dict[str, bytes] = {}
    for prefix in KEPT_PREFIXES:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        )
        for page in pages:
            for entry in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"]
                objects[entry["Key"]] = body.read()
    return objects


def take(
    dynamodb: Any,
    sqs: Any,
    provisioned: Provisioned,
    queues: Iterable[str],
    s3: Any = None,
) -> Snapshot:
    """Every table's items, the visible messages of `queues` and (with `s3`) the jobs' objects
    of every bucket, read through the endpoint."""
    return Snapshot(
        tables={
            logical_id: _scan(dynamodb, name)
            for logical_id, name in provisioned.tables.items()
        },
        queues={
            logical_id: _drain(sqs, provisioned.queue_urls[logical_id])
            for logical_id in queues
        },
        objects={}
        if s3 is None
        else {
            logical_id: _objects(s3, name)
            for logical_id, name in provisioned.buckets.items()
        },
    )


# ------------------------------------------------------------------------------- the file
def _encode(value: Any) -> Any:
    """JSON for the API's shapes: bytes (binary attributes) become {"__b64__": text}."""
    if isinstance(value, bytes):
        return {"__b64__": base64.b64encode(value).decode()}
    if isinstance(value, Mapping):
        return {key: _encode(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_encode(inner) for inner in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {key: _decode(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_decode(inner) for inner in value]
    return value


def save(snapshot: Snapshot, path: Path) -> None:
    """Write the snapshot to `path` in one step (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "version": VERSION,
        "saved_at": snapshot.saved_at,
        "tables": _encode(snapshot.tables),
        "queues": _encode(snapshot.queues),
        "objects": _encode(snapshot.objects),
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    os.replace(temporary, path)


def load(path: Path) -> Snapshot | None:
    """The snapshot saved at `path`; None when there is none."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read the saved state {path}: {exc}") from exc
    if not isinstance(document, dict) or document.get("version") != VERSION:
        raise StateError(
            f"the saved state {path} is not version {VERSION} of the format"
        )
    return Snapshot(
        tables=_decode(document.get("tables", {})),
        queues=_decode(document.get("queues", {})),
        saved_at=str(document.get("saved_at", "")),
        objects=_decode(
            document.get("objects", {})
        ),  # none in a file of an earlier run
    )
