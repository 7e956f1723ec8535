"""DynamoDB adapter for jobs: item <-> Job, typed update + precondition -> one conditional UpdateItem,
ClientError codes -> domain errors.

Every write carries a write token (`write_token`, fresh per logical write). botocore retries a
write whose response was lost (a 500, a read timeout) although DynamoDB applied it; the retry then
fails its condition against the write's own result. The failed condition returns the item as it is
(`ReturnValuesOnConditionCheckFailure`), so a token the item shows means "already applied": the call
returns what the first try would have, instead of reading "someone else changed the job". The item
shows a token as its last write's (`write_token`), and whatever was written since, as one of its
latest API writes (`control_tokens`: submit, cancel, retry) or as the token of a history entry (an
attempt's outcome: the claim's lease id) (`applied_by`).

Request building is pure (`build_*` functions) so tests can assert it without a network; the item
layout is `jobline.aws.items`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from jobline.aws import listing
from jobline.aws.items import (
    attempt_attribute,
    item_to_job,
    job_to_item,
    status_index_key,
    to_attribute,
)
from jobline.clock import format_ts
from jobline.errors import ConditionFailed, StorageUnavailable
from jobline.limits import LIST_PAGE_MAX_BYTES
from jobline.logging import get_logger
from jobline.models import Job, JobFilter, JobStatus, JobSummary
from jobline.ports import StartKey
from jobline.transition import NO_LEASE, JobUpdate, Precondition

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

log = get_logger(__name__)


def new_token() -> str:
    """A fresh write token."""
    return uuid.uuid4().hex


WRITE_TOKEN = "write_token"
"""The item attribute naming the last write applied to it (see the module docstring)."""

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


def build_create(
    table: str, job: Job, now: datetime, token: str | None = None
) -> dict[str, Any]:
    """PutItem that only succeeds when no live job has this id."""
    item = job_to_item(job)
    if token is not None:
        item[WRITE_TOKEN] = {"S": token}
    return {
        "TableName": table,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(id) OR expires_at <= :now",
        "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def _condition(
    precondition: Precondition, names: dict[str, str], values: dict[str, Any]
) -> str:
    names["#owner"] = "owner"
    names["#status"] = "status"
    values[":expect_owner"] = {"S": precondition.owner}
    statuses = []
    for i, status in enumerate(sorted(precondition.status_in)):
        values[f":expect_status{i}"] = {"S": status.value}
        statuses.append(f":expect_status{i}")
    status_clause = f"#status IN ({', '.join(statuses)})" if statuses else ""
    if precondition.lease_ended_before is not None:
        names["#lease_until"] = "lease_until"
        values[":running"] = {"S": JobStatus.RUNNING.value}
        values[":lease_now"] = {"S": format_ts(precondition.lease_ended_before)}
        lease_ended = "(#status = :running AND (attribute_not_exists(#lease_until) OR #lease_until < :lease_now))"
        status_clause = (
            f"({status_clause} OR {lease_ended})" if status_clause else lease_ended
        )
    if not status_clause:
        raise ValueError("a precondition admits no status")
    parts = ["#owner = :expect_owner", status_clause]
    if precondition.below_max_attempts:
        names["#attempts"] = "attempts"
        names["#max_attempts"] = "max_attempts"
        parts.append("#attempts < #max_attempts")
    if precondition.attempts is not None:
        names["#attempts"] = "attempts"
        values[":expect_attempts"] = {"N": str(precondition.attempts)}
        parts.append("#attempts = :expect_attempts")
    if precondition.due_by is not None:
        names["#run_after"] = "run_after"
        values[":due_by"] = {"S": format_ts(precondition.due_by)}
        parts.append("(attribute_not_exists(#run_after) OR #run_after <= :due_by)")
    if precondition.run is not None:
        names["#run"] = "run"
        values[":expect_run"] = {"N": str(precondition.run)}
        # A job stored before runs were numbered is in its first.
        first = " OR attribute_not_exists(#run)" if precondition.run == 1 else ""
        parts.append(f"(#run = :expect_run{first})")
    if precondition.lease_id is not None:
        names["#lease_id"] = "lease_id"
        if precondition.lease_id == NO_LEASE:
            parts.append("attribute_not_exists(#lease_id)")
        else:
            values[":expect_lease"] = {"S": precondition.lease_id}
            parts.append("#lease_id = :expect_lease")
    if precondition.checkpoint_before is not None:
        names["#checkpoint"] = "checkpoint"
        names["#seq"] = "seq"
        values[":checkpoint_before"] = {"N": str(precondition.checkpoint_before)}
        parts.append(
            "(attribute_not_exists(#checkpoint.#seq) OR #checkpoint.#seq < :checkpoint_before)"
        )
    if precondition.continuing is not None:
        names["#continue_at"] = "continue_at"
        parts.append(
            "attribute_exists(#continue_at)"
            if precondition.continuing
            else "attribute_not_exists(#continue_at)"
        )
    if precondition.progress_before is not None:
        names["#progress"] = "progress"
        names["#seq"] = "seq"
        values[":progress_before"] = {"N": str(precondition.progress_before)}
        parts.append(
            "(attribute_not_exists(#progress.#seq) OR #progress.#seq < :progress_before)"
        )
    return " AND ".join(parts)


def build_update(
    table: str,
    job_id: str,
    update: JobUpdate,
    precondition: Precondition,
    token: str | None = None,
) -> dict[str, Any]:
    """UpdateItem applying `update` under `precondition`, returning the new item; keeps
    `owner_status` in step with `status` (`items.status_index_key`); records `token` as the item's write token."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    sets: list[str] = []
    removes: list[str] = []
    fields = update.assignments()
    if "status" in fields:  # in the sparse status index, or out of it (REMOVE)
        fields["owner_status"] = status_index_key(precondition.owner, fields["status"])
    for i, (name, value) in enumerate(sorted(fields.items())):
        names[f"#f{i}"] = name
        if value is None:
            removes.append(f"#f{i}")
            continue
        values[f":v{i}"] = (
            {"S": value} if name == "owner_status" else to_attribute(name, value)
        )
        sets.append(f"#f{i} = :v{i}")
    if token is not None:
        names["#write_token"] = WRITE_TOKEN
        values[":write_token"] = {"S": token}
        sets.append("#write_token = :write_token")
    if update.increment_attempts:
        names["#attempts"] = "attempts"
        values[":one"] = {"N": "1"}
        sets.append("#attempts = #attempts + :one")
    if update.append_history:
        names["#history"] = "history"
        values[":no_history"] = {"L": []}
        values[":new_attempt"] = {
            "L": [attempt_attribute(a) for a in update.append_history]
        }
        sets.append(
            "#history = list_append(if_not_exists(#history, :no_history), :new_attempt)"
        )
    expression = ""
    if sets:
        expression += "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    condition = _condition(precondition, names, values)
    return {
        "TableName": table,
        "Key": {"id": {"S": job_id}},
        "UpdateExpression": expression.strip(),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def _lost_condition(exc: ClientError) -> dict[str, Any] | None:
    """The item a failed condition returned, or None when the error is not a lost condition."""
    if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
        return None
    item: dict[str, Any] = exc.response.get("Item") or {}  # type: ignore[assignment]
    return item


def applied_by(item: dict[str, Any] | None, token: str) -> bool:
    """Whether the item shows the write with `token` applied (an earlier try of this write): as
    its last write, among its latest API writes, or as the token of a history entry."""
    if item is None or not item:
        return False
    if item.get(WRITE_TOKEN, {}).get("S") == token:
        return True
    if any(t.get("S") == token for t in item.get("control_tokens", {}).get("L", [])):
        return True
    return any(
        entry.get("M", {}).get("token", {}).get("S") == token
        for entry in item.get("history", {}).get("L", [])
    )


def _translate(exc: ClientError | BotoCoreError, operation: str) -> Exception:
    if isinstance(exc, BotoCoreError):
        return StorageUnavailable(f"{operation}: {type(exc).__name__}")
    code = exc.response.get("Error", {}).get("Code", "")
    item = _lost_condition(exc)
    if item is not None:
        return ConditionFailed(item_to_job(item) if item else None)
    if code in _TRANSIENT:
        return StorageUnavailable(f"{operation}: {code}")
    return exc


class DynamoJobRepository:
    """Jobs in one DynamoDB table, through a boto3 client created once per execution environment."""

    def __init__(
        self, client: DynamoDBClient | Callable[[], DynamoDBClient], table_name: str
    ) -> None:
        """`client` is the client, or the (cached) function that creates it on first use (the
        outbox dispatcher, which only sends messages, then never builds one)."""
        self._connect = client if callable(client) else lambda: client
        self._table = table_name

    @property
    def _client(self) -> DynamoDBClient:
        return self._connect()

    def create(self, job: Job, now: datetime, *, token: str | None = None) -> None:
        """Store a new job unless a live job with its id exists (a retry of this very call
        that meets its own earlier success succeeds: `token`, a fresh one by default, names it;
        a job created with its token among `control_tokens` recognises it whatever happened
        to the job since)."""
        token = token or new_token()
        try:
            self._client.put_item(**build_create(self._table, job, now, token))
        except ClientError as exc:
            if applied_by(_lost_condition(exc), token):
                log.info("storage.write_applied_before", operation="create")
                return
            raise _translate(exc, "create") from exc
        except BotoCoreError as exc:
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
        self,
        job_id: str,
        update: JobUpdate,
        precondition: Precondition,
        *,
        token: str | None = None,
    ) -> Job:
        """Apply `update` if `precondition` holds; return the job after the write. `token`
        names the logical write (a fresh one by default): a write the item shows as already
        applied returns the item instead of failing its condition."""
        token = token or new_token()
        try:
            response = self._client.update_item(
                **build_update(self._table, job_id, update, precondition, token)
            )
        except ClientError as exc:
            item = _lost_condition(exc)
            if item is not None and applied_by(item, token):
                log.info("storage.write_applied_before", operation="update")
                return item_to_job(item)
            raise _translate(exc, "update") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "update") from exc
        return item_to_job(response["Attributes"])

    def query(
        self,
        owner: str,
        job_filter: JobFilter,
        limit: int,
        start: StartKey | None,
        now: datetime,
        *,
        max_bytes: int = LIST_PAGE_MAX_BYTES,
    ) -> tuple[list[JobSummary], StartKey | None]:
        """Up to `limit` live jobs of `owner`, newest first, as summaries, and where to resume
        (`jobline.aws.listing`: the index, then the items)."""
        return listing.list_jobs(
            self._client,
            self._table,
            owner,
            job_filter,
            limit,
            start,
            now,
            translate=_translate,
            max_bytes=max_bytes,
        )
