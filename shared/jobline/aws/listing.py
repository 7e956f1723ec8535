"""Listing an owner's jobs from the table's two indexes, which are shaped for the cost of a job's
writes rather than for reads (docs/benchmarks.md, Cost; docs/architecture.md, Scale):

- `by_owner` (`owner`, `sk`) projects only the keys and `type`. Neither changes after the submit,
  so the index is written once per job, never on a transition.
- `by_owner_status` (`owner_status`, `sk`, `type` projected) is sparse: an item carries
  `owner_status` only in a status worth finding among many (`failed`, `cancelled`,
  `dead_lettered`, `rejected`: `items.INDEXED_STATUSES`), so a job that succeeds never enters it.

A listing Queries the narrowest index (newest first; a type is a filter on the index), then reads
the page's items with BatchGetItem and keeps the ones that match what the index cannot say: a
`queued`, `running` or `succeeded` filter, expiry (TTL deletes up to 48 h late), and the owner.
Those statuses are read through `by_owner`, so a page may hold fewer jobs than asked for, even
none, with a cursor to go on: at most `MAX_PAGES_PER_LIST` Queries per call.

A listing returns summaries (`JobSummary`): the BatchGetItem projects the attributes a summary
holds (`SUMMARY_ATTRIBUTES`), never the payload, result or history. That keeps the answer at a few
hundred bytes an item whatever the jobs hold (under BatchGetItem's 16 MB, and the page under its
byte budget); it does not cut the read's cost, which DynamoDB counts on the whole item.

A resume key comes back inside a cursor, which may have been signed by an earlier version whose
indexes differed (`by_owner_type`, a status index holding every status): `check_start` refuses
any key that is not exactly the shape this version gives for the filter, before DynamoDB sees it.

Request building is pure (`build_query`, `build_batch_get`); `list_jobs` runs them on a client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from jobline.aws.items import INDEXED_STATUSES, status_key
from jobline.clock import format_ts, parse_ts
from jobline.errors import InvalidCursor, StorageUnavailable
from jobline.limits import LIST_PAGE_MAX_BYTES
from jobline.models import JobError, JobFilter, JobSummary, Progress, matches
from jobline.ports import StartKey

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

INDEX_BY_OWNER = "by_owner"
INDEX_BY_OWNER_STATUS = "by_owner_status"
MAX_PAGES_PER_LIST = 10
"""Queries one listing call makes at most before it answers with what it found and a cursor."""
SCAN_PAGE = 100
"""Index entries read per Query when a status filter is applied to the items (BatchGetItem
takes at most 100 keys)."""
UNPROCESSED_PAUSES_S = (0.05, 0.2, 0.5)
"""Pauses before asking again for the keys a BatchGetItem left unprocessed (throttling)."""
SUMMARY_ATTRIBUTES = tuple(
    name for name in JobSummary.model_fields if name != "error_truncated"
)
"""What a listing reads of each item: `JobSummary`'s fields, as `jobline.aws.items` stores them."""
_NUMBERS = frozenset(
    name
    for name, field in JobSummary.model_fields.items()
    if field.annotation in (int, int | None)
)
_TIMESTAMPS = frozenset(
    name
    for name, field in JobSummary.model_fields.items()
    if field.annotation in (datetime, datetime | None)
)


@dataclass(frozen=True)
class Plan:
    """Which index partition a filter reads, and what is checked on the items afterwards."""

    index: str
    key_name: str
    key_value: str
    status_on_items: bool
    """The status filter is not the index's: check it on each item (and read bigger pages)."""


def plan(owner: str, job_filter: JobFilter) -> Plan:
    """The narrowest index for `job_filter`."""
    status = job_filter.status
    if status is not None and status in INDEXED_STATUSES:
        return Plan(
            INDEX_BY_OWNER_STATUS, "owner_status", status_key(owner, status), False
        )
    return Plan(INDEX_BY_OWNER, "owner", owner, status is not None)


def build_query(
    table: str,
    owner: str,
    job_filter: JobFilter,
    limit: int,
    start: StartKey | None,
) -> dict[str, Any]:
    """The Query of one page of index entries, newest first (a type is filtered on the index)."""
    chosen = plan(owner, job_filter)
    names = {"#pk": chosen.key_name}
    values: dict[str, Any] = {":pk": {"S": chosen.key_value}}
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": chosen.index,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": max(limit, SCAN_PAGE) if chosen.status_on_items else limit,
    }
    if job_filter.type is not None:
        names["#type"] = "type"
        values[":type"] = {"S": job_filter.type}
        request["FilterExpression"] = "#type = :type"
    if start:
        request["ExclusiveStartKey"] = {
            name: {"S": value} for name, value in start.items()
        }
    return request


def build_batch_get(table: str, job_ids: Sequence[str]) -> dict[str, Any]:
    """BatchGetItem of the summaries of up to 100 jobs (eventually consistent, like the index
    that named them): `SUMMARY_ATTRIBUTES` only, every name through a placeholder (`status` and
    others are reserved words)."""
    names = {f"#a{n}": name for n, name in enumerate(SUMMARY_ATTRIBUTES)}
    return {
        "RequestItems": {
            table: {
                "Keys": [{"id": {"S": job_id}} for job_id in job_ids],
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        }
    }


def item_to_summary(item: dict[str, Any]) -> JobSummary:
    """A projected item (`SUMMARY_ATTRIBUTES`, stored as `jobline.aws.items` writes them) as a
    summary; the error is bounded there (`JobSummary`)."""
    data: dict[str, Any] = {}
    for name, attr in item.items():
        if name in _NUMBERS:
            data[name] = int(attr["N"])
        elif name in _TIMESTAMPS:
            data[name] = parse_ts(attr["S"])
        elif name == "error":
            fields = attr["M"]
            data[name] = JobError(
                type=fields["type"]["S"], message=fields["message"]["S"]
            )
        elif name == "progress":
            fields = attr["M"]
            data[name] = Progress(
                percent=float(fields["percent"]["N"]),
                message=fields["message"]["S"] if "message" in fields else None,
                updated_at=parse_ts(fields["updated_at"]["S"]),
            )
        elif name in SUMMARY_ATTRIBUTES and "S" in attr:
            data[name] = attr["S"]
    return JobSummary.model_validate(data)


def check_start(start: StartKey, chosen: Plan) -> None:
    """`InvalidCursor` unless `start` is exactly a resume key this version gives for `chosen`:
    the table's key `id`, the index's sort key `sk` (`created_at#id`, `items.sort_key`) and the
    index's partition key with this listing's value, nothing else. A cursor signed before an
    upgrade can hold another index's key (`owner_type`, or `owner_status` of a status the status
    index no longer holds), a partition written another way, or fewer attributes; DynamoDB would
    answer those with a ValidationException, or (moto) an error of its own, or resume elsewhere."""
    if set(start) != {"id", "sk", chosen.key_name}:
        raise InvalidCursor()
    stamp, _, job_id = start["sk"].partition("#")
    if (
        not job_id
        or job_id != start["id"]
        or start[chosen.key_name] != chosen.key_value
    ):
        raise InvalidCursor()
    try:
        written = format_ts(parse_ts(stamp))
    except ValueError as exc:
        raise InvalidCursor() from exc
    if written != stamp:
        raise InvalidCursor()


def _entry_key(entry: dict[str, Any], key_name: str) -> StartKey:
    """The resume key just after an index entry (the index's and the table's keys)."""
    return {name: entry[name]["S"] for name in ("id", "sk", key_name)}


def _fetch(
    client: DynamoDBClient,
    table: str,
    job_ids: list[str],
    sleep: Callable[[float], None],
) -> dict[str, JobSummary]:
    """The summaries of the jobs behind index entries, by id (one gone since the index named it
    is absent)."""
    found: dict[str, JobSummary] = {}
    request = build_batch_get(table, job_ids)
    for pause in (*UNPROCESSED_PAUSES_S, None):
        response = client.batch_get_item(**request)
        for item in response.get("Responses", {}).get(table, []):
            job = item_to_summary(item)
            found[job.id] = job
        unprocessed = response.get("UnprocessedKeys") or {}
        if not unprocessed:
            return found
        if pause is None:
            break
        sleep(pause)
        request = {"RequestItems": unprocessed}
    raise StorageUnavailable("list: BatchGetItem left keys unprocessed")


def list_jobs(
    client: DynamoDBClient,
    table: str,
    owner: str,
    job_filter: JobFilter,
    limit: int,
    start: StartKey | None,
    now: datetime,
    *,
    translate: Callable[[ClientError | BotoCoreError, str], Exception],
    sleep: Callable[[float], None] = time.sleep,
    max_bytes: int = LIST_PAGE_MAX_BYTES,
) -> tuple[list[JobSummary], StartKey | None]:
    """Up to `limit` live jobs of `owner` matching `job_filter`, newest first, as summaries whose
    encoded size stays within `max_bytes` (at least one job), and the exact key to resume after
    the last job returned or index entry looked at (None: nothing more). `JobRepository.query`."""
    chosen = plan(owner, job_filter)
    if start is not None:
        check_start(start, chosen)
    jobs: list[JobSummary] = []
    used = 0
    key = start
    for _ in range(MAX_PAGES_PER_LIST):
        query_start = key
        request = build_query(table, owner, job_filter, limit - len(jobs), query_start)
        try:
            response = client.query(**request)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if (
                query_start is start
                and start is not None
                and code == "ValidationException"
            ):
                # DynamoDB refused the caller's resume key: their cursor, not our bug.
                raise InvalidCursor() from exc
            raise translate(exc, "query") from exc
        except BotoCoreError as exc:
            raise translate(exc, "query") from exc
        entries: list[dict[str, Any]] = response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        key = {name: attr["S"] for name, attr in last.items()} if last else None
        if not entries:
            if key is None:
                break
            continue
        try:
            fetched = _fetch(client, table, [e["id"]["S"] for e in entries], sleep)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "list") from exc
        for position, entry in enumerate(entries):
            job = fetched.get(entry["id"]["S"])
            if job is None or not matches(job, owner, job_filter, now):
                continue
            size = job.encoded_size()
            if jobs and used + size > max_bytes:
                # Full by size: resume just before this entry, after the one looked at last.
                if position:
                    return jobs, _entry_key(entries[position - 1], chosen.key_name)
                assert (
                    query_start is not None
                )  # jobs came from an earlier Query: it had a key
                return jobs, query_start
            jobs.append(job)
            used += size
            if len(jobs) == limit:
                if position < len(entries) - 1:
                    key = _entry_key(entry, chosen.key_name)
                return jobs, key
        if key is None:
            break
    return jobs, key
