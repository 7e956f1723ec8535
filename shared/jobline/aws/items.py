"""DynamoDB items <-> Jobs, pure. One item per job, key `id`:
payload/result are JSON text (exact round trip of floats and big ints, no Decimal), or, when too
large for the item, kept in the data bucket with a map `payload_ref`/`result_ref` {key, size,
sha256} in their place;
timestamps are fixed-width ISO 8601 UTC text (`jobline.clock`), so they sort as text;
`sk` = created_at#id sorts newest first inside each index partition;
`owner_status` = owner#status partitions the status index, each component escaped (`key_part`)
so that no two (owner, status) pairs share a partition, and is present only in the statuses of
`INDEXED_STATUSES` (a sparse index: `jobline.aws.listing`); a type is a filter, not a key;
`expires_at` (epoch seconds, the table's TTL attribute) is set when a job finishes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from jobline.clock import format_ts, parse_ts
from jobline.models import (
    Attempt,
    Checkpoint,
    DataRef,
    Job,
    JobError,
    JobStatus,
    Progress,
)


def sort_key(job: Job) -> str:
    """`sk`: newest first within an index partition, ties broken by id."""
    return f"{format_ts(job.created_at)}#{job.id}"


def key_part(value: str) -> str:
    """One component of a composite index key, with the separator escaped out of it: `%` becomes
    `%25` and `#` becomes `%23`. The escape is injective and leaves no `#`, so `key_part(a) + "#" +
    key_part(b)` splits back into (a, b) one way only, whatever identity string `a` is (owners are
    any OIDC issuer's `sub`); usual identities, without `%` or `#`, are unchanged."""
    return value.replace("%", "%25").replace("#", "%23")


INDEXED_STATUSES = frozenset(
    {JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DEAD_LETTERED, JobStatus.REJECTED}
)
"""The statuses the status index holds: the ones an owner looks for among many (what went wrong).
`queued`, `running` and `succeeded` stay out, so that a job's usual path (submit, claim, success)
writes the index never; listings of those read the owner's index (`jobline.aws.listing`)."""


def status_index_key(owner: str, status: JobStatus) -> str | None:
    """The item's `owner_status` in `status`: its status-index partition, or None (not in it)."""
    return status_key(owner, status) if status in INDEXED_STATUSES else None


def status_key(owner: str, status: JobStatus) -> str:
    """`owner_status`: the partition of the owner's jobs in one status."""
    return f"{key_part(owner)}#{key_part(status.value)}"


def _fields_of(*annotations: Any) -> frozenset[str]:
    """The Job fields annotated as one of `annotations` (the model decides how a field is stored)."""
    return frozenset(
        name
        for name, field in Job.model_fields.items()
        if field.annotation in annotations
    )


_JSON_FIELDS = _fields_of(Any)
"""payload, result: stored as JSON text."""
_TS_FIELDS = _fields_of(datetime, datetime | None)
"""Every timestamp: stored as fixed-width ISO 8601 UTC text."""
_INT_FIELDS = _fields_of(int, int | None)
"""attempts, max_attempts, delay_seconds, expires_at: stored as numbers."""
_REF_FIELDS = _fields_of(DataRef | None)
"""payload_ref, result_ref: stored as maps."""


def _dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def to_attribute(name: str, value: Any) -> dict[str, Any]:
    """One Job field as a DynamoDB attribute value."""
    if name in _JSON_FIELDS:
        return {"S": _dump_json(value)}
    if name in _TS_FIELDS:
        return {"S": format_ts(value)}
    if name in _INT_FIELDS:
        return {"N": str(int(value))}
    if name == "error":
        err = value if isinstance(value, JobError) else JobError.model_validate(value)
        return _error_attribute(err)
    if name == "history":
        return {
            "L": [attempt_attribute(Attempt.model_validate(entry)) for entry in value]
        }
    if name == "progress":
        progress = (
            value if isinstance(value, Progress) else Progress.model_validate(value)
        )
        fields: dict[str, Any] = {
            "percent": {"N": f"{progress.percent:.3f}"},
            "updated_at": {"S": format_ts(progress.updated_at)},
        }
        if progress.message is not None:
            fields["message"] = {"S": progress.message}
        if progress.seq is not None:
            fields["seq"] = {"N": str(progress.seq)}
        return {"M": fields}
    if name == "control_tokens":
        return {"L": [{"S": token} for token in value]}
    if name == "checkpoint":
        saved = (
            value if isinstance(value, Checkpoint) else Checkpoint.model_validate(value)
        )
        return {
            "M": {
                "state": {"S": _dump_json(saved.state)},
                "seq": {"N": str(saved.seq)},
                "saved_at": {"S": format_ts(saved.saved_at)},
            }
        }
    if name in _REF_FIELDS:
        ref = value if isinstance(value, DataRef) else DataRef.model_validate(value)
        return {
            "M": {
                "key": {"S": ref.key},
                "size": {"N": str(ref.size)},
                "sha256": {"S": ref.sha256},
            }
        }
    if isinstance(value, JobStatus):
        return {"S": value.value}
    if isinstance(value, str):
        return {"S": value}
    raise TypeError(f"no attribute mapping for field {name!r}")


def _error_attribute(err: JobError) -> dict[str, Any]:
    return {"M": {"type": {"S": err.type}, "message": {"S": err.message}}}


def attempt_attribute(attempt: Attempt) -> dict[str, Any]:
    """One history entry as a DynamoDB map."""
    fields: dict[str, Any] = {
        "attempt": {"N": str(attempt.attempt)},
        "run": {"N": str(attempt.run)},
        "started_at": {"S": format_ts(attempt.started_at)},
    }
    if attempt.token is not None:
        fields["token"] = {"S": attempt.token}
    if attempt.finished_at is not None:
        fields["finished_at"] = {"S": format_ts(attempt.finished_at)}
    if attempt.error is not None:
        fields["error"] = _error_attribute(attempt.error)
    if attempt.request_id is not None:
        fields["request_id"] = {"S": attempt.request_id}
    if attempt.duration_ms is not None:
        fields["duration_ms"] = {"N": str(attempt.duration_ms)}
    return {"M": fields}


def _attempt_from(attr: dict[str, Any]) -> Attempt:
    fields = attr["M"]
    return Attempt(
        attempt=int(fields["attempt"]["N"]),
        run=int(fields["run"]["N"]) if "run" in fields else 1,
        token=fields["token"]["S"] if "token" in fields else None,
        started_at=parse_ts(fields["started_at"]["S"]),
        finished_at=parse_ts(fields["finished_at"]["S"])
        if "finished_at" in fields
        else None,
        error=_error_from(fields["error"]) if "error" in fields else None,
        request_id=fields["request_id"]["S"] if "request_id" in fields else None,
        duration_ms=int(fields["duration_ms"]["N"])
        if "duration_ms" in fields
        else None,
    )


def _error_from(attr: dict[str, Any]) -> JobError:
    return JobError(type=attr["M"]["type"]["S"], message=attr["M"]["message"]["S"])


def job_to_item(job: Job) -> dict[str, Any]:
    """A Job as a full DynamoDB item, index keys included."""
    item: dict[str, Any] = {}
    for name, value in job:
        if (value is None and name not in _JSON_FIELDS) or (
            name in ("history", "control_tokens") and not value
        ):
            continue
        item[name] = to_attribute(name, value)
    if job.result is None:
        item.pop("result", None)
    item["sk"] = {"S": sort_key(job)}
    partition = status_index_key(job.owner, job.status)
    if partition is not None:
        item["owner_status"] = {"S": partition}
    return item


def item_to_job(item: dict[str, Any]) -> Job:
    """A DynamoDB item as a Job."""
    data: dict[str, Any] = {}
    for name, attr in item.items():
        if name in _JSON_FIELDS:
            data[name] = json.loads(attr["S"])
        elif name in _TS_FIELDS:
            data[name] = parse_ts(attr["S"])
        elif name in _INT_FIELDS:
            data[name] = int(attr["N"])
        elif name == "error":
            data[name] = _error_from(attr)
        elif name == "history":
            data[name] = tuple(_attempt_from(entry) for entry in attr["L"])
        elif name == "progress":
            fields = attr["M"]
            data[name] = Progress(
                percent=float(fields["percent"]["N"]),
                message=fields["message"]["S"] if "message" in fields else None,
                updated_at=parse_ts(fields["updated_at"]["S"]),
                seq=int(fields["seq"]["N"]) if "seq" in fields else None,
            )
        elif name == "control_tokens":
            data[name] = tuple(entry["S"] for entry in attr["L"])
        elif name == "checkpoint":
            fields = attr["M"]
            data[name] = Checkpoint(
                state=json.loads(fields["state"]["S"]),
                seq=int(fields["seq"]["N"]),
                saved_at=parse_ts(fields["saved_at"]["S"]),
            )
        elif name in _REF_FIELDS:
            fields = attr["M"]
            data[name] = DataRef(
                key=fields["key"]["S"],
                size=int(fields["size"]["N"]),
                sha256=fields["sha256"]["S"],
            )
        elif "S" in attr:
            data[name] = attr["S"]
    return Job.model_validate(data)
