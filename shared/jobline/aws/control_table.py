"""DynamoDB adapter for flow control's state (issue 18): the control table (`ControlTable` in
template.yaml), its own table, so the jobs table's stream keeps its one reader. Key: `pk`, `sk`.

| item | pk | sk | attributes |
|---|---|---|---|
| a concurrency key's permits | `c#<name>#<key>` | `permits` | `held` (count), `h:<job id>` = {lease, at} per holder, `limit` |
| a waiter | `c#<name>#<key>` or `p#<scope>` | `w#<rank>#<job id>` | `job_id`, `owner`, `since` |
| a rate limit's bucket | `r#<name>#<key>` | `bucket` | `tat`, `version`, `expires_at` (TTL) |
| the live settings | `settings` | `flow` | `overrides` {name: limit}, `pauses` {scope: since} |

Every write is one conditional request; one whose answer was lost is retried by botocore and then
meets its own earlier success: an acquire finds the job holding the key (taken over: the same
write), a release finds the permit gone (False, harmless), a waiter put is a put of the same item.
Request building is pure (`build_*`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from jobline.clock import format_ts, parse_ts
from jobline.errors import StorageUnavailable
from jobline.flow import FlowKey, FlowSettings, Holder, Permits, Waiter
from jobline.logging import get_logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

log = get_logger(__name__)

PERMITS_SK = "permits"
BUCKET_SK = "bucket"
SETTINGS_KEY = {"pk": {"S": "settings"}, "sk": {"S": "flow"}}
HOLDER_PREFIX = "h:"

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


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _lost_condition(exc: ClientError) -> dict[str, Any] | None:
    if _code(exc) != "ConditionalCheckFailedException":
        return None
    item: dict[str, Any] = exc.response.get("Item") or {}  # type: ignore[assignment]
    return item


def _translate(exc: ClientError | BotoCoreError, operation: str) -> Exception:
    if isinstance(exc, BotoCoreError):
        return StorageUnavailable(f"{operation}: {type(exc).__name__}")
    code = _code(exc)
    if code in _TRANSIENT:
        return StorageUnavailable(f"{operation}: {code}")
    return exc


def permits_key(key: FlowKey) -> dict[str, Any]:
    """The key of `key`'s permits item."""
    return {"pk": {"S": f"c#{key.label}"}, "sk": {"S": PERMITS_SK}}


def build_acquire(
    table: str, key: FlowKey, limit: int, job_id: str, lease_id: str, now: datetime
) -> dict[str, Any]:
    """UpdateItem adding `job_id` as a holder while there is room (or taking over its entry)."""
    return {
        "TableName": table,
        "Key": permits_key(key),
        "UpdateExpression": "SET #h = :holder, #held = if_not_exists(#held, :zero) + :one, "
        "#limit = :limit",
        "ConditionExpression": "attribute_not_exists(#h) AND "
        "(attribute_not_exists(#held) OR #held < :limit)",
        "ExpressionAttributeNames": {
            "#h": HOLDER_PREFIX + job_id,
            "#held": "held",
            "#limit": "limit",
        },
        "ExpressionAttributeValues": {
            ":holder": {"M": {"lease": {"S": lease_id}, "at": {"S": format_ts(now)}}},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":limit": {"N": str(limit)},
        },
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def build_take_over(
    table: str, key: FlowKey, job_id: str, lease_id: str, now: datetime
) -> dict[str, Any]:
    """UpdateItem giving the job's existing holder entry to this claim (no new permit)."""
    return {
        "TableName": table,
        "Key": permits_key(key),
        "UpdateExpression": "SET #h = :holder",
        "ConditionExpression": "attribute_exists(#h)",
        "ExpressionAttributeNames": {"#h": HOLDER_PREFIX + job_id},
        "ExpressionAttributeValues": {
            ":holder": {"M": {"lease": {"S": lease_id}, "at": {"S": format_ts(now)}}},
        },
    }


def build_release(
    table: str, key: FlowKey, job_id: str, lease_id: str
) -> dict[str, Any]:
    """UpdateItem removing the holder `job_id` if its entry is still `lease_id`'s."""
    return {
        "TableName": table,
        "Key": permits_key(key),
        "UpdateExpression": "REMOVE #h SET #held = #held - :one",
        "ConditionExpression": "#h.#lease = :lease",
        "ExpressionAttributeNames": {
            "#h": HOLDER_PREFIX + job_id,
            "#held": "held",
            "#lease": "lease",
        },
        "ExpressionAttributeValues": {":lease": {"S": lease_id}, ":one": {"N": "1"}},
    }


def permits_of(item: dict[str, Any]) -> Permits:
    """A permits item as `Permits`."""
    holders = tuple(
        Holder(
            job_id=name[len(HOLDER_PREFIX) :],
            lease_id=value["M"]["lease"]["S"],
            at=parse_ts(value["M"]["at"]["S"]),
        )
        for name, value in sorted(item.items())
        if name.startswith(HOLDER_PREFIX)
    )
    limit = int(item["limit"]["N"]) if "limit" in item else None
    return Permits(holders, limit)


def waiter_item(waiter: Waiter, since: datetime) -> dict[str, Any]:
    """A waiter as an item."""
    return {
        "pk": {"S": waiter.queue},
        "sk": {"S": waiter.sort_key},
        "job_id": {"S": waiter.job_id},
        "owner": {"S": waiter.owner},
        "since": {"S": format_ts(since)},
    }


def waiter_of(item: dict[str, Any]) -> Waiter:
    """An item as a waiter."""
    sort_key = item["sk"]["S"]
    job_id = item["job_id"]["S"]
    rank = sort_key[len("w#") : -len(job_id) - 1]
    return Waiter(item["pk"]["S"], rank, job_id, item["owner"]["S"])


class DynamoFlowStore:
    """The control table through a boto3 client created once per execution environment."""

    def __init__(
        self, client: DynamoDBClient | Callable[[], DynamoDBClient], table_name: str
    ) -> None:
        self._connect = client if callable(client) else lambda: client
        self._table = table_name

    @property
    def _client(self) -> DynamoDBClient:
        return self._connect()

    def _call(self, operation: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, operation) from exc

    # ---------------------------------------------------------------- permits
    def acquire(
        self, key: FlowKey, limit: int, job_id: str, lease_id: str, now: datetime
    ) -> Permits | None:
        """See `FlowStore.acquire`."""
        request = build_acquire(self._table, key, limit, job_id, lease_id, now)
        try:
            self._client.update_item(**request)
            return None
        except ClientError as exc:
            item = _lost_condition(exc)
            if item is None:
                raise _translate(exc, "acquire") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "acquire") from exc
        if HOLDER_PREFIX + job_id not in item:
            return permits_of(item)
        # The job holds the key already: this try's own earlier success (a lost answer), or an
        # earlier claim of the job whose entry this claim takes over.
        take_over = build_take_over(self._table, key, job_id, lease_id, now)
        try:
            self._client.update_item(**take_over)
        except ClientError as exc:
            if _lost_condition(exc) is not None:
                # Released in between: try again from the start (the caller's loop).
                return self.permits(key)
            raise _translate(exc, "acquire") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "acquire") from exc
        return None

    def release(self, key: FlowKey, job_id: str, lease_id: str) -> bool:
        """See `FlowStore.release`."""
        try:
            self._client.update_item(
                **build_release(self._table, key, job_id, lease_id)
            )
            return True
        except ClientError as exc:
            if _lost_condition(exc) is not None:
                return False
            raise _translate(exc, "release") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "release") from exc

    def permits(self, key: FlowKey) -> Permits:
        """See `FlowStore.permits`."""
        response = self._call(
            "permits",
            lambda: self._client.get_item(
                TableName=self._table, Key=permits_key(key), ConsistentRead=True
            ),
        )
        return permits_of(response.get("Item") or {})

    # ---------------------------------------------------------------- waiters
    def add_waiter(self, waiter: Waiter, since: datetime) -> None:
        """See `FlowStore.add_waiter`: a put of the same item (its `since` kept)."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=waiter_item(waiter, since),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _lost_condition(exc) is None:
                raise _translate(exc, "add_waiter") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "add_waiter") from exc

    def waiters(self, queue: str, limit: int) -> list[Waiter]:
        """See `FlowStore.waiters`."""
        response = self._call(
            "waiters",
            lambda: self._client.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :w)",
                ExpressionAttributeValues={":pk": {"S": queue}, ":w": {"S": "w#"}},
                ConsistentRead=True,
                Limit=limit,
            ),
        )
        return [waiter_of(item) for item in response.get("Items", [])]

    def _count(self, queue: str, last: str) -> int:
        """Waiters of `queue` whose sort key is at most `last` (a count, page by page)."""
        count = 0
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk AND sk BETWEEN :w AND :last",
                "ExpressionAttributeValues": {
                    ":pk": {"S": queue},
                    ":w": {"S": "w#"},
                    ":last": {"S": last},
                },
                "Select": "COUNT",
            }
            if start:
                request["ExclusiveStartKey"] = start
            response = self._call("count", partial(self._client.query, **request))
            count += int(response.get("Count", 0))
            start = response.get("LastEvaluatedKey")
            if not start:
                return count

    def position(self, waiter: Waiter) -> int:
        """See `FlowStore.position`."""
        # BETWEEN includes the waiter itself
        return max(0, self._count(waiter.queue, waiter.sort_key) - 1)

    def count_waiters(self, queue: str) -> int:
        """See `FlowStore.count_waiters`."""
        return self._count(queue, "w$")  # "$" sorts right after "#": every "w#..." key

    def remove_waiter(self, waiter: Waiter) -> None:
        """See `FlowStore.remove_waiter`."""
        self._call(
            "remove_waiter",
            lambda: self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": waiter.queue}, "sk": {"S": waiter.sort_key}},
            ),
        )

    def sweep_queues(self) -> list[str]:
        """See `FlowStore.sweep_queues`: a scan of the control table (small: keys,
        waiters and buckets; no job rows), on the sweep's schedule only."""
        queues: set[str] = set()
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self._table,
                "FilterExpression": "begins_with(sk, :w) OR (sk = :permits AND #held > :zero)",
                "ProjectionExpression": "pk",
                "ExpressionAttributeNames": {"#held": "held"},
                "ExpressionAttributeValues": {
                    ":w": {"S": "w#"},
                    ":permits": {"S": PERMITS_SK},
                    ":zero": {"N": "0"},
                },
            }
            if start:
                request["ExclusiveStartKey"] = start
            response = self._call("scan", partial(self._client.scan, **request))
            queues.update(item["pk"]["S"] for item in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start:
                return sorted(queues)

    # ---------------------------------------------------------------- settings
    def settings(self) -> FlowSettings:
        """See `FlowStore.settings`."""
        response = self._call(
            "settings",
            lambda: self._client.get_item(
                TableName=self._table, Key=SETTINGS_KEY, ConsistentRead=True
            ),
        )
        item = response.get("Item") or {}
        overrides = {
            name: int(value["N"])
            for name, value in item.get("overrides", {}).get("M", {}).items()
        }
        pauses = {
            scope: parse_ts(value["S"])
            for scope, value in item.get("pauses", {}).get("M", {}).items()
        }
        return FlowSettings(overrides, pauses)

    def _set_entry(
        self, attribute: str, entry: str, value: dict[str, Any] | None
    ) -> None:
        """Set (None: remove) `attribute.entry` of the settings item, creating the map first
        when the item has none (a nested path needs its parent)."""
        names = {"#a": attribute, "#e": entry}
        if value is None:
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key=SETTINGS_KEY,
                    UpdateExpression="REMOVE #a.#e",
                    ConditionExpression="attribute_exists(#a)",
                    ExpressionAttributeNames=names,
                )
            except ClientError as exc:
                if _lost_condition(exc) is None:
                    raise _translate(exc, "settings") from exc
            except BotoCoreError as exc:
                raise _translate(exc, "settings") from exc
            return
        self._call(
            "settings",
            partial(
                self._client.update_item,
                TableName=self._table,
                Key=SETTINGS_KEY,
                UpdateExpression="SET #a = if_not_exists(#a, :empty)",
                ExpressionAttributeNames={"#a": attribute},
                ExpressionAttributeValues={":empty": {"M": {}}},
            ),
        )
        self._call(
            "settings",
            partial(
                self._client.update_item,
                TableName=self._table,
                Key=SETTINGS_KEY,
                UpdateExpression="SET #a.#e = if_not_exists(#a.#e, :v)"
                if attribute == "pauses"
                else "SET #a.#e = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":v": value},
            ),
        )

    def set_override(self, name: str, limit: int | None) -> None:
        """See `FlowStore.set_override`."""
        self._set_entry("overrides", name, None if limit is None else {"N": str(limit)})

    def set_pause(self, scope: str, since: datetime | None) -> None:
        """See `FlowStore.set_pause`."""
        self._set_entry(
            "pauses", scope, None if since is None else {"S": format_ts(since)}
        )

    # ---------------------------------------------------------------- rate buckets
    def rate_bucket(self, name: str, key: str) -> tuple[datetime | None, int]:
        """See `FlowStore.rate_bucket`."""
        response = self._call(
            "rate_bucket",
            lambda: self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": f"r#{name}#{key}"}, "sk": {"S": BUCKET_SK}},
                ConsistentRead=True,
            ),
        )
        item = response.get("Item")
        if not item:
            return None, 0
        return parse_ts(item["tat"]["S"]), int(item["version"]["N"])

    def put_rate_bucket(
        self, name: str, key: str, tat: datetime, version: int, expires_at: int
    ) -> bool:
        """See `FlowStore.put_rate_bucket`."""
        condition = (
            "attribute_not_exists(pk)" if version == 0 else "#version = :version"
        )
        request: dict[str, Any] = {
            "TableName": self._table,
            "Item": {
                "pk": {"S": f"r#{name}#{key}"},
                "sk": {"S": BUCKET_SK},
                "tat": {"S": format_ts(tat)},
                "version": {"N": str(version + 1)},
                "expires_at": {"N": str(expires_at)},
            },
            "ConditionExpression": condition,
        }
        if version:
            request["ExpressionAttributeNames"] = {"#version": "version"}
            request["ExpressionAttributeValues"] = {":version": {"N": str(version)}}
        try:
            self._client.put_item(**request)
            return True
        except ClientError as exc:
            if _lost_condition(exc) is not None:
                return False
            raise _translate(exc, "put_rate_bucket") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "put_rate_bucket") from exc
