"""DynamoDB adapter for jobs: item <-> Job, conditional writes, ClientError codes -> domain errors.

Request building is pure (`build_*` functions) so tests can assert it without a network.
Item layout (one item per job, key `id`):
  payload/result are JSON text (exact round trip of floats and big ints, no Decimal);
  `sk` = created_at#id sorts newest first inside each index partition;
  `owner_status` = owner#status and `owner_type` = owner#type partition the filter indexes;
  `expires_at` (epoch seconds, the table's TTL attribute) is set when a job finishes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from jobline.clock import format_ts, parse_ts
from jobline.errors import ConditionFailed, StorageUnavailable
from jobline.models import Attempt, Job, JobError, JobFilter, JobStatus, Progress
from jobline.ports import Change, Expect, StartKey

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

INDEX_BY_OWNER = "by_owner"
INDEX_BY_OWNER_STATUS = "by_owner_status"
INDEX_BY_OWNER_TYPE = "by_owner_type"
MAX_PAGES_PER_LIST = 10
"""A filtered listing reads at most this many index pages before it returns a (possibly short) page."""

_TRANSIENT = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "ResourceNotFoundException",
    }
)
_JSON_FIELDS = frozenset({"payload", "result"})
_TS_FIELDS = frozenset(
    {
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "run_after",
        "cancel_requested_at",
        "lease_until",
    }
)
_TEXT_FIELDS = frozenset({"attempt_request_id"})
_INT_FIELDS = frozenset({"attempts", "max_attempts", "delay_seconds", "expires_at"})


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
        return {"M": fields}
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
        "started_at": {"S": format_ts(attempt.started_at)},
    }
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
            name == "history" and not value
        ):
            continue
        item[name] = to_attribute(name, value)
    if job.result is None:
        item.pop("result", None)
    item["sk"] = {"S": f"{format_ts(job.created_at)}#{job.id}"}
    item["owner_status"] = {"S": f"{job.owner}#{job.status.value}"}
    item["owner_type"] = {"S": f"{job.owner}#{job.type}"}
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
            )
        elif "S" in attr:
            data[name] = attr["S"]
    return Job.model_validate(data)


def build_create(table: str, job: Job, now: datetime) -> dict[str, Any]:
    """PutItem that only succeeds when no live job has this id."""
    return {
        "TableName": table,
        "Item": job_to_item(job),
        "ConditionExpression": "attribute_not_exists(id) OR expires_at <= :now",
        "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def _condition(expect: Expect, names: dict[str, str], values: dict[str, Any]) -> str:
    names["#owner"] = "owner"
    names["#status"] = "status"
    values[":expect_owner"] = {"S": expect.owner}
    statuses = []
    for i, status in enumerate(sorted(expect.status_in)):
        values[f":expect_status{i}"] = {"S": status.value}
        statuses.append(f":expect_status{i}")
    status_clause = f"#status IN ({', '.join(statuses)})"
    if expect.lease_expired_before is not None:
        names["#lease_until"] = "lease_until"
        values[":running"] = {"S": JobStatus.RUNNING.value}
        values[":lease_now"] = {"S": format_ts(expect.lease_expired_before)}
        status_clause = f"({status_clause} OR (#status = :running AND (attribute_not_exists(#lease_until) OR #lease_until < :lease_now)))"
    parts = ["#owner = :expect_owner", status_clause]
    if expect.below_max_attempts:
        names["#attempts"] = "attempts"
        names["#max_attempts"] = "max_attempts"
        parts.append("#attempts < #max_attempts")
    if expect.attempts is not None:
        names["#attempts"] = "attempts"
        values[":expect_attempts"] = {"N": str(expect.attempts)}
        parts.append("#attempts = :expect_attempts")
    return " AND ".join(parts)


def build_update(
    table: str, job_id: str, change: Change, expect: Expect, return_old: bool = False
) -> dict[str, Any]:
    """UpdateItem applying `change` under `expect`; keeps `owner_status` in step with `status`."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets: list[str] = []
    removes: list[str] = []
    fields = dict(change.values)
    if "status" in fields:
        fields["owner_status"] = f"{expect.owner}#{JobStatus(fields['status']).value}"
    for i, (name, value) in enumerate(sorted(fields.items())):
        names[f"#f{i}"] = name
        if value is None:
            removes.append(f"#f{i}")
            continue
        values[f":v{i}"] = (
            {"S": value} if name == "owner_status" else to_attribute(name, value)
        )
        sets.append(f"#f{i} = :v{i}")
    if change.increment_attempts:
        names["#attempts"] = "attempts"
        values[":one"] = {"N": "1"}
        sets.append("#attempts = #attempts + :one")
    if change.append_history or change.set_history:
        names["#history"] = "history"
    if change.append_history:
        values[":no_history"] = {"L": []}
        values[":new_attempt"] = {
            "L": [attempt_attribute(a) for a in change.append_history]
        }
        sets.append(
            "#history = list_append(if_not_exists(#history, :no_history), :new_attempt)"
        )
    for index, entry in sorted(change.set_history.items()):
        values[f":h{index}"] = attempt_attribute(entry)
        sets.append(f"#history[{int(index)}] = :h{index}")
    expression = ""
    if sets:
        expression += "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    condition = _condition(expect, names, values)
    return {
        "TableName": table,
        "Key": {"id": {"S": job_id}},
        "UpdateExpression": expression.strip(),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_OLD" if return_old else "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def build_query(
    table: str,
    owner: str,
    job_filter: JobFilter,
    limit: int,
    start: StartKey | None,
    now: datetime,
) -> dict[str, Any]:
    """Query on the narrowest index for the filter, newest first, hiding expired jobs."""
    names = {"#pk": "", "#expires_at": "expires_at"}
    values: dict[str, Any] = {":now": {"N": str(int(now.timestamp()))}}
    filters = ["(attribute_not_exists(#expires_at) OR #expires_at > :now)"]
    if job_filter.status is not None:
        index, names["#pk"] = INDEX_BY_OWNER_STATUS, "owner_status"
        values[":pk"] = {"S": f"{owner}#{job_filter.status.value}"}
        if job_filter.type is not None:
            names["#type"] = "type"
            values[":type"] = {"S": job_filter.type}
            filters.append("#type = :type")
    elif job_filter.type is not None:
        index, names["#pk"] = INDEX_BY_OWNER_TYPE, "owner_type"
        values[":pk"] = {"S": f"{owner}#{job_filter.type}"}
    else:
        index, names["#pk"] = INDEX_BY_OWNER, "owner"
        values[":pk"] = {"S": owner}
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": "#pk = :pk",
        "FilterExpression": " AND ".join(filters),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if start:
        request["ExclusiveStartKey"] = {
            name: {"S": value} for name, value in start.items()
        }
    return request


def _translate(exc: ClientError | BotoCoreError, operation: str) -> Exception:
    if isinstance(exc, BotoCoreError):
        return StorageUnavailable(f"{operation}: {exc}")
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    if code == "ConditionalCheckFailedException":
        item: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
        return ConditionFailed(item_to_job(item) if item else None)
    if code in _TRANSIENT:
        return StorageUnavailable(f"{operation}: {code}")
    return exc


class DynamoJobRepository:
    """Jobs in one DynamoDB table, through a boto3 client created once per execution environment."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def create(self, job: Job, now: datetime) -> None:
        """Store a new job unless a live job with its id exists."""
        try:
            self._client.put_item(**build_create(self._table, job, now))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "create") from exc

    def get(self, job_id: str) -> Job | None:
        """The stored job (expired or not), strongly consistent."""
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"id": {"S": job_id}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "get") from exc
        item = response.get("Item")
        return item_to_job(item) if item else None

    def update(
        self, job_id: str, change: Change, expect: Expect, *, return_old: bool = False
    ) -> Job:
        """Apply `change` if `expect` holds; return the job after the write (before it, with
        `return_old`)."""
        try:
            response = self._client.update_item(
                **build_update(self._table, job_id, change, expect, return_old)
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "update") from exc
        return item_to_job(response["Attributes"])

    def delete(self, job_id: str, expect: Expect) -> None:
        """Remove a job if `expect` holds."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        condition = _condition(expect, names, values)
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"id": {"S": job_id}},
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "delete") from exc

    def query(
        self,
        owner: str,
        job_filter: JobFilter,
        limit: int,
        start: StartKey | None,
        now: datetime,
    ) -> tuple[list[Job], StartKey | None]:
        """Up to `limit` live jobs of `owner`, newest first, and where to resume.

        Filters (expiry, type within a status) can thin a page, so this reads further pages,
        asking each time only for what is still missing, so the resume key is exact.
        """
        jobs: list[Job] = []
        key = start
        for _ in range(MAX_PAGES_PER_LIST):
            request = build_query(
                self._table, owner, job_filter, limit - len(jobs), key, now
            )
            try:
                response = self._client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise _translate(exc, "query") from exc
            jobs.extend(item_to_job(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            key = {name: attr["S"] for name, attr in last.items()} if last else None
            if key is None or len(jobs) >= limit:
                break
        return jobs, key
