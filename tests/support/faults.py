"""Fault injection for tests: AWS's own failure modes, injected into botocore clients that talk to
a real moto server on loopback.

`FaultInjector` hooks botocore's `before-send` event on each client it is attached to (clients copy
their session's emitter when they are created, so attaching is per client, e.g.
`bootstrap.dynamodb_client()` and `bootstrap.sqs_client()`). For each HTTP request (botocore's
retries are requests too) it decides, in this order, whether an outage window covers the call, a
scripted fault is due, or a random fault is drawn, and then does one of:

| fault | what the caller's botocore sees | applied? |
|---|---|---|
| `Throttle` | 400 with the service's throttling code (DynamoDB `ProvisionedThroughputExceededException`, SQS `RequestThrottled` with `x-amzn-query-error`): retried | no |
| `Unavailable` (and outage windows) | 503 `ServiceUnavailable`: retried | no |
| `LostResponse` | the request is sent to the server and its answer discarded; then a 500 (`InternalServerError` / `InternalFailure`) or `botocore.exceptions.ReadTimeoutError`: both retried, and the retry meets its own earlier write | yes |
| `Latency` | nothing, `ms` later | yes |
| `Kill` | the given `BaseException` subclass, raised before or after sending; botocore's retries never see it (`Endpoint._do_get_response` captures `Exception` only) | after sending: yes |
| `Held` | the request is sent, its answer held until the test sets `release`, then a 500: botocore's retry (the same write, sent again) comes after whatever the test did meanwhile | yes |
| `Late` | a read timeout at once, the request not yet sent; it is sent when the test sets `release` (a straggler: applied after its caller gave up or moved on) | when released |
| `Hook` | `run()` is called, then the request is sent as usual: another actor's step placed exactly between two of the caller's | yes |

`Held` and `Late` are also drawn at random (`Rates.held`, `Rates.late`: a hold, or a straggler's
delay, drawn in `held_s` / `late_s`). Outage windows answer 503 to every matching call; throttle
bursts (`throttle_bursts`) answer a 100 % throttle to one call kind at a time.

Usage::

    injector = FaultInjector(seed=7)
    lost = injector.script(
        LostResponse(), "dynamodb.UpdateItem", nth=2,
        where=expression_value(":expect_status0", "running"),
    )
    injector.randomly("sqs.*", Rates(throttle=0.05, latency=0.1))
    with injector.attached(bootstrap.dynamodb_client(), bootstrap.sqs_client()):
        ...
    assert lost.fired is not None
    injector.print_table()

`tag` (optional) names who made each request (e.g. which API call, from a context variable of
the caller's thread); it is recorded with the call (`Call.tag`), and each decision records when
its request reached the server (`Decision.sent_at`: at once, later for a straggler, never for a
fault that answers without sending), so a test can tell which try of a write applied it and
whether its caller saw an answer after that.

Random decisions are seeded: each call kind (`service.Operation`) draws from its own
`random.Random(f"{seed}/{kind}")`, so the n-th request of a kind gets the same decision in every
run with the same seed, whatever other kinds do in between. Every decision is recorded
(`decisions`, `injected`, `report()`), and counted per call kind and fault (`table()`).

`SerializedMotoServer` (from `jobline_local.endpoint`, which `make run` uses too) is moto's
threaded server answering one DynamoDB request at a time (see its docstring for why).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session
from jobline_local.endpoint import SerializedMotoServer as SerializedMotoServer

if TYPE_CHECKING:
    from botocore.client import BaseClient


class FaultKind(StrEnum):
    """What an injected fault does (the columns of `FaultInjector.table()`)."""

    THROTTLE = "throttle"
    UNAVAILABLE = "unavailable"
    LOST_RESPONSE = "lost_response"
    LATENCY = "latency"
    KILL_BEFORE_SEND = "kill_before_send"
    KILL_AFTER_SEND = "kill_after_send"
    HELD_RESPONSE = "held_response"
    LATE_WRITE = "late_write"
    HOOK = "hook"


@dataclass(frozen=True)
class Throttle:
    """Answer 400 with the service's throttling error, without sending: not applied.
    `code` overrides the service's usual one (any code in botocore's throttling list is retried)."""

    code: str | None = None

    @property
    def kind(self) -> FaultKind:
        """`FaultKind.THROTTLE`."""
        return FaultKind.THROTTLE


@dataclass(frozen=True)
class Unavailable:
    """Answer 503 `ServiceUnavailable` without sending: not applied (what an outage window does)."""

    @property
    def kind(self) -> FaultKind:
        """`FaultKind.UNAVAILABLE`."""
        return FaultKind.UNAVAILABLE


@dataclass(frozen=True)
class LostResponse:
    """Send the request, discard the server's answer, then answer 500 (or, with `as_timeout`,
    raise `ReadTimeoutError`): applied, and botocore retries it."""

    as_timeout: bool = False

    @property
    def kind(self) -> FaultKind:
        """`FaultKind.LOST_RESPONSE`."""
        return FaultKind.LOST_RESPONSE


@dataclass(frozen=True)
class Latency:
    """Sleep `ms` milliseconds, then let botocore send the request as usual."""

    ms: float

    @property
    def kind(self) -> FaultKind:
        """`FaultKind.LATENCY`."""
        return FaultKind.LATENCY


@dataclass(frozen=True)
class Kill:
    """Raise `exception(message)` (a BaseException subclass that is not an Exception, e.g. one that
    stands for "the Lambda environment was killed") before sending, or after sending (applied,
    the response never seen). botocore neither retries it nor emits `after-call-error`."""

    exception: type[BaseException]
    after_send: bool = False

    @property
    def kind(self) -> FaultKind:
        """`FaultKind.KILL_AFTER_SEND` or `FaultKind.KILL_BEFORE_SEND`."""
        return (
            FaultKind.KILL_AFTER_SEND if self.after_send else FaultKind.KILL_BEFORE_SEND
        )


@dataclass(frozen=True, eq=False)
class Held:
    """Send the request (applied), hold its answer until `release` is set (at most `max_s`),
    then answer 500: botocore sends the same request again after whatever happened meanwhile."""

    release: threading.Event = field(default_factory=threading.Event)
    max_s: float = 30.0

    @property
    def kind(self) -> FaultKind:
        """`FaultKind.HELD_RESPONSE`."""
        return FaultKind.HELD_RESPONSE


@dataclass(frozen=True, eq=False)
class Late:
    """Answer a read timeout at once without sending; send the request when `release` is set
    (at most `max_s` later): a straggler write, applied after its caller gave up. `sent` is set
    once it was sent; `status` then holds the server's answer (200 applied, 400 refused)."""

    release: threading.Event = field(default_factory=threading.Event)
    max_s: float = 30.0
    sent: threading.Event = field(default_factory=threading.Event)
    status: list[int] = field(default_factory=list)

    @property
    def kind(self) -> FaultKind:
        """`FaultKind.LATE_WRITE`."""
        return FaultKind.LATE_WRITE


@dataclass(frozen=True, eq=False)
class Hook:
    """Call `run()`, then send the request as usual: another actor's step, placed exactly
    before this request (e.g. a requeue between a cancel's read and its write)."""

    run: Callable[[], None]

    @property
    def kind(self) -> FaultKind:
        """`FaultKind.HOOK`."""
        return FaultKind.HOOK


Fault = Throttle | Unavailable | LostResponse | Latency | Kill | Held | Late | Hook


@dataclass(frozen=True)
class Call:
    """One HTTP request as the injector sees it: `kind` is `service.Operation` (botocore's
    hyphenized service id, e.g. `dynamodb.UpdateItem`, `sqs.SendMessage`), `attempt` botocore's
    attempt number (1 for the caller's call, 2.. for its retries), `params` the JSON body, `tag`
    who made it."""

    kind: str
    attempt: int
    invocation_id: str
    body: bytes
    params: Mapping[str, Any]
    tag: str | None = None
    """Who made the request (the injector's `tag`, read in the caller's thread), or None."""

    @property
    def service(self) -> str:
        """`dynamodb`, `sqs`..."""
        return self.kind.split(".", 1)[0]

    @property
    def operation(self) -> str:
        """`UpdateItem`, `SendMessage`..."""
        return self.kind.split(".", 1)[1]


Predicate = Callable[[Call], bool]


def mentions(text: str) -> Predicate:
    """Matches a request whose body contains `text` (a job id, a queue URL...)."""
    needle = text.encode()
    return lambda call: needle in call.body


def expression_value(name: str, value: str) -> Predicate:
    """Matches a request whose ExpressionAttributeValues bind `name` to the string `value`, e.g.
    `expression_value(":expect_status0", "running")`."""
    return lambda call: (
        call.params.get("ExpressionAttributeValues", {}).get(name) == {"S": value}
    )


def sets_any(*attributes: str) -> Predicate:
    """Matches an UpdateItem whose update expression SETs one of `attributes` (e.g.
    `sets_any("progress")`: a progress report, not a claim that removes it)."""
    wanted = set(attributes)

    def matches(call: Call) -> bool:
        expression = str(call.params.get("UpdateExpression", ""))
        assigned = expression.partition("SET ")[2].partition(" REMOVE ")[0]
        names = call.params.get("ExpressionAttributeNames", {})
        return any(
            names.get(part.split("=")[0].strip()) in wanted
            for part in assigned.split(", ")
        )

    return matches


def item_key(value: str, attribute: str = "id") -> Predicate:
    """Matches a DynamoDB request on the item whose key `attribute` is the string `value` (its
    `Key`, or the `Item` of a PutItem)."""
    expected = {"S": value}

    def matches(call: Call) -> bool:
        for part in ("Key", "Item"):
            if call.params.get(part, {}).get(attribute) == expected:
                return True
        return False

    return matches


@dataclass
class Scripted:
    """A scripted fault: `fault` on the `nth` request matching `call` (an fnmatch pattern of call
    kinds) and `where`. Only the caller's calls count, not botocore's retries of them, unless
    `include_retries`. Fires once; `fired` is then its decision."""

    fault: Fault
    call: str
    nth: int = 1
    where: Predicate | None = None
    include_retries: bool = False
    seen: int = 0
    fired: Decision | None = None

    def matches(self, call: Call) -> bool:
        """Whether `call` counts towards this script (not fired yet, kind, predicate, attempt)."""
        return (
            self.fired is None
            and (self.include_retries or call.attempt == 1)
            and fnmatch.fnmatchcase(call.kind, self.call)
            and (self.where is None or self.where(call))
        )


@dataclass(frozen=True)
class Rates:
    """Per-request probabilities of each fault for the call kinds of one `randomly` pattern (their
    sum at most 1). A lost response is a ReadTimeoutError with probability `timeout_share`, else a
    500; a latency lasts `latency_ms` (uniform); a kill raises `kill`; a held answer is released
    after `held_s` (uniform: botocore sends the write again after it); a late write (a straggler)
    is sent `late_s` (uniform) after its caller was told it timed out."""

    throttle: float = 0.0
    unavailable: float = 0.0
    lost_response: float = 0.0
    latency: float = 0.0
    kill_before_send: float = 0.0
    kill_after_send: float = 0.0
    held: float = 0.0
    late: float = 0.0
    timeout_share: float = 0.5
    latency_ms: tuple[float, float] = (5.0, 50.0)
    kill: type[BaseException] | None = None
    held_s: tuple[float, float] = (0.6, 3.0)
    late_s: tuple[float, float] = (1.0, 8.0)

    def __post_init__(self) -> None:
        probabilities = self._probabilities()
        if any(not 0.0 <= p <= 1.0 for _, p in probabilities) or (
            sum(p for _, p in probabilities) > 1.0 + 1e-9
        ):
            raise ValueError(
                f"fault probabilities must be in [0, 1] and sum to <= 1: {self}"
            )
        if (self.kill_before_send or self.kill_after_send) and self.kill is None:
            raise ValueError(
                "a kill probability needs the exception to raise (kill=...)"
            )

    def _probabilities(self) -> list[tuple[FaultKind, float]]:
        return [
            (FaultKind.THROTTLE, self.throttle),
            (FaultKind.UNAVAILABLE, self.unavailable),
            (FaultKind.LOST_RESPONSE, self.lost_response),
            (FaultKind.LATENCY, self.latency),
            (FaultKind.KILL_BEFORE_SEND, self.kill_before_send),
            (FaultKind.KILL_AFTER_SEND, self.kill_after_send),
            (FaultKind.HELD_RESPONSE, self.held),
            (FaultKind.LATE_WRITE, self.late),
        ]

    def draw(self, rng: random.Random) -> Fault | None:
        """The fault of one request (always three draws, so the stream stays aligned; a hold's
        or a straggler's delay reuses the second, as a lost response's kind does)."""
        which, share, ms = rng.random(), rng.random(), rng.uniform(*self.latency_ms)
        cumulative = 0.0
        for kind, probability in self._probabilities():
            cumulative += probability
            if which < cumulative:
                return self._fault(kind, share, ms)
        return None

    def _fault(self, kind: FaultKind, share: float, ms: float) -> Fault:
        if kind is FaultKind.THROTTLE:
            return Throttle()
        if kind is FaultKind.UNAVAILABLE:
            return Unavailable()
        if kind is FaultKind.LOST_RESPONSE:
            return LostResponse(as_timeout=share < self.timeout_share)
        if kind is FaultKind.LATENCY:
            return Latency(ms=ms)
        if kind is FaultKind.HELD_RESPONSE:
            low, high = self.held_s
            return Held(max_s=low + share * (high - low))
        if kind is FaultKind.LATE_WRITE:
            low, high = self.late_s
            return Late(max_s=low + share * (high - low))
        assert self.kill is not None  # checked in __post_init__
        return Kill(self.kill, after_send=kind is FaultKind.KILL_AFTER_SEND)


@dataclass(frozen=True)
class OutageWindow:
    """From `start` to `end` (the injector's clock: monotonic seconds) every request whose kind
    matches `calls` (an fnmatch pattern) is answered with `fault` without being applied: 503
    (an outage), or the service's throttling error (a throttle burst)."""

    start: float
    end: float
    calls: str = "*"
    fault: Unavailable | Throttle = Unavailable()

    @property
    def source(self) -> Source:
        """`outage` (503) or `burst` (throttled)."""
        return "burst" if isinstance(self.fault, Throttle) else "outage"

    def covers(self, call: Call, now: float) -> bool:
        """Whether `call`, made at `now`, falls in this outage."""
        return self.start <= now < self.end and fnmatch.fnmatchcase(
            call.kind, self.calls
        )


Source = Literal["outage", "burst", "script", "random"]


@dataclass
class Decision:
    """What the injector did with one request: `fault` None means it passed untouched. `at` is
    the injector's clock; `server_status` the status the server answered a request the injector
    sent itself (a lost response, a held answer, a kill after sending, a straggler), which the
    caller never saw."""

    seq: int
    at: float
    call: Call
    fault: Fault | None
    source: Source | None
    server_status: int | None = None
    sent_at: float | None = None
    """When the request reached the server (the injector's clock): None while it has not (a
    straggler not yet released) or never will (a throttle, an outage, a kill before sending)."""
    seen_status: int | None = None
    """The HTTP status the caller's botocore got for this request (the server's, or the fault's
    made-up one); None when it got none (a timeout, real or injected, a kill) or not yet."""
    seen_error: str | None = None
    """The exception the caller's botocore got instead of a response (e.g. `ReadTimeoutError`)."""

    @property
    def answered(self) -> bool:
        """Whether the caller's botocore saw the server's own answer to this request (no fault,
        or only a delay, and a response: not a timeout)."""
        return (
            self.fault is None or isinstance(self.fault, Latency | Hook)
        ) and self.seen_status is not None

    def describe(self, since: float = 0.0) -> str:
        """One line: number, time, call, attempt, fault and where it came from."""
        what = "passed" if self.fault is None else f"{self.fault!r} ({self.source})"
        sent = (
            "" if self.server_status is None else f", server said {self.server_status}"
        )
        return (
            f"#{self.seq} +{self.at - since:.3f}s {self.call.kind} attempt {self.call.attempt}:"
            f" {what}{sent}"
        )


@dataclass(frozen=True)
class _ServiceErrors:
    namespace: str
    throttle: str
    internal: str


_SERVICE_ERRORS = {
    "dynamodb": _ServiceErrors(
        "com.amazonaws.dynamodb.v20120810#",
        "ProvisionedThroughputExceededException",
        "InternalServerError",
    ),
    "sqs": _ServiceErrors("com.amazonaws.sqs#", "RequestThrottled", "InternalFailure"),
}
_OTHER_SERVICE_ERRORS = _ServiceErrors("", "ThrottlingException", "InternalFailure")


class _Body:
    """The raw stream of a made-up response (botocore reads `raw.stream()`)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@dataclass
class _Attachment:
    client: BaseClient
    session: URLLib3Session
    unique_id: str
    query_compatible: bool


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _header(request: AWSPreparedRequest, name: str) -> str:
    """A request header as text (botocore encodes header values to bytes when it prepares a
    request)."""
    value = request.headers.get(name)
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def _attempt(request: AWSPreparedRequest) -> tuple[int, str]:
    """botocore's attempt number and invocation id (the `amz-sdk-request` and
    `amz-sdk-invocation-id` headers it sets when a request is created)."""
    fields = dict(
        part.strip().split("=", 1)
        for part in _header(request, "amz-sdk-request").split(";")
        if "=" in part
    )
    return int(fields.get("attempt", "1")), _header(request, "amz-sdk-invocation-id")


def _body(request: AWSPreparedRequest) -> bytes:
    body = request.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return b""


class FaultInjector:
    """Decides, records and injects faults into the requests of the clients attached to it."""

    def __init__(
        self,
        seed: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        tag: Callable[[], str | None] | None = None,
    ) -> None:
        """`seed` makes random faults and random outage windows repeatable; `clock` is the time
        of outage windows and decisions (monotonic seconds); `tag`, called in the thread that
        makes each request, names who made it (`Call.tag`)."""
        self.seed = seed
        self._clock = clock
        self._sleep = sleep
        self._tag = tag
        self._rng = random.Random(seed)
        self._streams: dict[str, random.Random] = {}
        self._lock = threading.Lock()
        self._scripts: list[Scripted] = []
        self._rates: list[tuple[str, Rates, Predicate | None]] = []
        self._outages: list[OutageWindow] = []
        self._decisions: list[Decision] = []
        self._by_attempt: dict[tuple[str, int], Decision] = {}
        self._attached: list[_Attachment] = []
        self.started = clock()
        self.requests: Counter[str] = Counter()
        """Requests seen, per call kind (retries included)."""
        self.counts: Counter[tuple[str, FaultKind]] = Counter()
        """Faults injected, per (call kind, fault kind)."""
        self.source_counts: Counter[tuple[str, Source, FaultKind]] = Counter()
        """Faults injected, per (call kind, where the fault came from, fault kind)."""

    # What to inject

    def script(
        self,
        fault: Fault,
        call: str,
        *,
        nth: int = 1,
        where: Predicate | None = None,
        include_retries: bool = False,
    ) -> Scripted:
        """Inject `fault` once, on the `nth` call matching `call` (fnmatch: `dynamodb.UpdateItem`,
        `sqs.*`) and `where`. An earlier script takes precedence on a request both would match."""
        if nth < 1:
            raise ValueError("nth counts from 1")
        scripted = Scripted(fault, call, nth, where, include_retries)
        with self._lock:
            self._scripts.append(scripted)
        return scripted

    def randomly(
        self, calls: str, rates: Rates, *, where: Predicate | None = None
    ) -> None:
        """Draw a fault for every request whose kind matches `calls` (fnmatch) and `where`;
        the first pattern given that matches a request decides its rates (a kind draws from
        one stream whichever rates apply)."""
        with self._lock:
            self._rates.append((calls, rates, where))

    def outage(self, start: float, end: float, calls: str = "*") -> OutageWindow:
        """An outage of the matching calls between two instants of the injector's clock."""
        if end <= start:
            raise ValueError("an outage window ends after it starts")
        window = OutageWindow(start, end, calls)
        with self._lock:
            self._outages.append(window)
        return window

    def outage_for(
        self, seconds: float, calls: str = "*", *, starting_in: float = 0.0
    ) -> OutageWindow:
        """An outage of the matching calls, `starting_in` seconds from now, `seconds` long."""
        start = self._clock() + starting_in
        return self.outage(start, start + seconds, calls)

    def schedule_outages(
        self,
        count: int,
        within: float,
        *,
        duration: tuple[float, float] = (0.2, 1.0),
        calls: str = "*",
        start: float | None = None,
    ) -> list[OutageWindow]:
        """`count` outages of the matching calls, each lasting `duration` (uniform, seconds) and
        placed at random (seeded) in the `within` seconds from `start` (default: now)."""
        origin = self._clock() if start is None else start
        windows = []
        for _ in range(count):
            length = self._rng.uniform(*duration)
            begin = origin + self._rng.uniform(0.0, max(0.0, within - length))
            windows.append(self.outage(begin, begin + length, calls))
        return windows

    def throttle_bursts(
        self,
        count: int,
        within: float,
        *,
        calls: Sequence[str],
        duration: tuple[float, float] = (2.0, 4.0),
        start: float | None = None,
    ) -> list[OutageWindow]:
        """`count` bursts in which every request of one call kind (drawn from `calls` for each
        burst, seeded) is throttled, each lasting `duration` (uniform, seconds) and placed at
        random in the `within` seconds from `start` (default: now)."""
        if not calls:
            raise ValueError("a throttle burst needs the call kinds it may hit")
        origin = self._clock() if start is None else start
        windows = []
        for _ in range(count):
            kind = self._rng.choice(list(calls))
            length = self._rng.uniform(*duration)
            begin = origin + self._rng.uniform(0.0, max(0.0, within - length))
            window = OutageWindow(begin, begin + length, kind, Throttle())
            with self._lock:
                self._outages.append(window)
            windows.append(window)
        return windows

    def stop_faults(self) -> None:
        """Inject nothing from now on (scripts, random draws, outage windows and bursts are
        dropped); requests are still seen and recorded, and stragglers already held back are
        still sent when due."""
        with self._lock:
            self._scripts.clear()
            self._rates.clear()
            self._outages.clear()

    # Where to inject

    def attach(self, *clients: BaseClient) -> None:
        """Hook `before-send` of each client (DynamoDB and SQS: the AWS JSON protocol). Only a
        loopback endpoint is accepted: lost responses and kills after sending really send."""
        for client in clients:
            endpoint = client.meta.endpoint_url
            if not _is_loopback(endpoint):
                raise ValueError(
                    f"faults are injected on loopback only, not {endpoint}"
                )
            model = client.meta.service_model
            if model.protocol != "json":
                raise ValueError(f"{model.service_name}: only JSON-protocol services")
            attachment = _Attachment(
                client=client,
                session=URLLib3Session(timeout=60, max_pool_connections=64),
                unique_id=f"jobline-faults-{uuid.uuid4().hex}",
                query_compatible="awsQueryCompatible" in model.metadata,
            )

            def on_before_send(
                request: AWSPreparedRequest,
                event_name: str,
                attachment: _Attachment = attachment,
                **_: Any,
            ) -> AWSResponse | None:
                return self._before_send(attachment, request, event_name)

            client.meta.events.register(
                "before-send",
                on_before_send,  # type: ignore[arg-type]  # the stub says -> None
                unique_id=attachment.unique_id,
            )
            client.meta.events.register(
                "response-received",
                self._on_response,
                unique_id=f"{attachment.unique_id}-seen",
            )
            with self._lock:
                self._attached.append(attachment)

    def detach(self) -> None:
        """Unhook every attached client; recorded decisions and counts stay."""
        with self._lock:
            attached, self._attached = self._attached, []
        for attachment in attached:
            attachment.client.meta.events.unregister(
                "before-send", unique_id=attachment.unique_id
            )
            attachment.client.meta.events.unregister(
                "response-received", unique_id=f"{attachment.unique_id}-seen"
            )
            attachment.session.close()

    @contextmanager
    def attached(self, *clients: BaseClient) -> Iterator[FaultInjector]:
        """`attach` the clients for the duration of a `with` block, then `detach`."""
        self.attach(*clients)
        try:
            yield self
        finally:
            self.detach()

    # What was injected

    def decide(self, call: Call) -> Decision:
        """Decide (and record) what happens to one request: outage, else a due script, else a
        random draw. The hook calls this; tests may too, to check decisions without a server."""
        with self._lock:
            now = self._clock()
            fault: Fault | None = None
            source: Source | None = None
            window = next((w for w in self._outages if w.covers(call, now)), None)
            if window is not None:
                fault, source = window.fault, window.source
            firing: Scripted | None = None
            for scripted in self._scripts:
                if fault is None and scripted.matches(call):
                    scripted.seen += 1
                    if scripted.seen == scripted.nth:
                        firing, fault, source = scripted, scripted.fault, "script"
            if fault is None:
                rates = next(
                    (
                        r
                        for pattern, r, where in self._rates
                        if fnmatch.fnmatchcase(call.kind, pattern)
                        and (where is None or where(call))
                    ),
                    None,
                )
                if rates is not None:
                    stream = self._streams.setdefault(
                        call.kind, random.Random(f"{self.seed}/{call.kind}")
                    )
                    fault = rates.draw(stream)
                    source = "random" if fault is not None else None
            decision = Decision(len(self._decisions) + 1, now, call, fault, source)
            if firing is not None:
                firing.fired = decision
            self._decisions.append(decision)
            if call.invocation_id:
                self._by_attempt[(call.invocation_id, call.attempt)] = decision
            self.requests[call.kind] += 1
            if fault is not None and source is not None:
                self.counts[(call.kind, fault.kind)] += 1
                self.source_counts[(call.kind, source, fault.kind)] += 1
            return decision

    @property
    def decisions(self) -> list[Decision]:
        """Every request's decision, in order."""
        with self._lock:
            return list(self._decisions)

    @property
    def injected(self) -> list[Decision]:
        """The decisions that injected a fault."""
        return [d for d in self.decisions if d.fault is not None]

    def count(
        self,
        kind: FaultKind | None = None,
        call: str = "*",
        source: Source | None = None,
    ) -> int:
        """Faults injected of `kind` (default: any) on calls matching `call` (fnmatch), from
        `source` (default: any)."""
        with self._lock:
            return sum(
                n
                for (call_kind, from_, fault_kind), n in self.source_counts.items()
                if (kind is None or fault_kind is kind)
                and (source is None or from_ == source)
                and fnmatch.fnmatchcase(call_kind, call)
            )

    def report(self) -> str:
        """One line per injected fault, times relative to the injector's creation."""
        return "\n".join(d.describe(self.started) for d in self.injected)

    def table(self) -> str:
        """Requests and injected faults per call kind, as a fixed-width text table."""
        with self._lock:
            kinds = sorted(self.requests)
            requests = Counter(self.requests)
            counts = Counter(self.counts)
        columns = ["requests", "passed", *FaultKind]
        rows: list[list[str]] = []
        totals = Counter[str]()
        for call_kind in kinds:
            faults = {str(k): counts[(call_kind, k)] for k in FaultKind}
            values = {
                "requests": requests[call_kind],
                "passed": requests[call_kind] - sum(faults.values()),
                **faults,
            }
            totals.update(values)
            rows.append([call_kind, *(str(values[c]) for c in columns)])
        rows.append(["total", *(str(totals[c]) for c in columns)])
        header = ["call", *columns]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def line(cells: Iterable[str]) -> str:
            parts = [
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts)

        return "\n".join([line(header), *(line(r) for r in rows[:-1]), line(rows[-1])])

    def print_table(self, title: str | None = None) -> None:
        """Print `table()` (and a title line): the summary a soak test shows."""
        if title:
            print(f"{title} (seed {self.seed})")  # noqa: T201
        print(self.table())  # noqa: T201

    # How it is injected

    def _on_response(
        self,
        context: Mapping[str, Any] | None = None,
        exception: BaseException | None = None,
        response_dict: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """botocore's `response-received`: what the caller got for one request (its attempt)."""
        retries = (context or {}).get("retries", {})
        key = (str(retries.get("invocation-id", "")), int(retries.get("attempt", 0)))
        with self._lock:
            decision = self._by_attempt.get(key)
        if decision is None:
            return
        if exception is not None:
            decision.seen_error = type(exception).__name__
        elif response_dict is not None:
            decision.seen_status = int(response_dict.get("status_code", 0))

    def _before_send(
        self, attachment: _Attachment, request: AWSPreparedRequest, event_name: str
    ) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        body = _body(request)
        attempt, invocation = _attempt(request)
        try:
            params: Mapping[str, Any] = json.loads(body) if body else {}
        except ValueError:
            params = {}
        tag = self._tag() if self._tag is not None else None
        call = Call(f"{service}.{operation}", attempt, invocation, body, params, tag)
        decision = self.decide(call)
        fault = decision.fault
        if fault is None:
            decision.sent_at = decision.at
            return None
        if isinstance(fault, Latency):
            self._sleep(fault.ms / 1000.0)
            decision.sent_at = self._clock()
            return None
        if isinstance(fault, Throttle):
            code = fault.code or self._errors(service).throttle
            return self._error(attachment, request, call, 400, code, "Sender")
        if isinstance(fault, Unavailable):
            return self._error(
                attachment, request, call, 503, "ServiceUnavailable", "Receiver"
            )
        if isinstance(fault, Kill) and not fault.after_send:
            raise fault.exception(f"fault injector killed {call.kind} before sending")
        if isinstance(fault, Hook):
            fault.run()
            decision.sent_at = self._clock()
            return None
        if isinstance(fault, Late):
            self._send_late(attachment, request, decision, fault)
            raise ReadTimeoutError(
                endpoint_url=request.url,
                error=f"fault injector holds {call.kind} back (a straggler)",
            )
        decision.sent_at = self._clock()
        decision.server_status = attachment.session.send(request).status_code
        if isinstance(fault, Held):
            fault.release.wait(fault.max_s)
            internal = self._errors(service).internal
            return self._error(attachment, request, call, 500, internal, "Receiver")
        if isinstance(fault, Kill):
            raise fault.exception(f"fault injector killed {call.kind} after sending")
        if fault.as_timeout:
            raise ReadTimeoutError(
                endpoint_url=request.url,
                error=f"fault injector lost the response to {call.kind}",
            )
        internal = self._errors(service).internal
        return self._error(attachment, request, call, 500, internal, "Receiver")

    def _send_late(
        self,
        attachment: _Attachment,
        request: AWSPreparedRequest,
        decision: Decision,
        fault: Late,
    ) -> None:
        """Send `request` on a thread of its own once `fault.release` is set."""

        def send() -> None:
            fault.release.wait(fault.max_s)
            decision.sent_at = self._clock()
            status = attachment.session.send(request).status_code
            decision.server_status = status
            fault.status.append(status)
            fault.sent.set()

        threading.Thread(target=send, name="late-write", daemon=True).start()

    @staticmethod
    def _errors(service: str) -> _ServiceErrors:
        return _SERVICE_ERRORS.get(service, _OTHER_SERVICE_ERRORS)

    def _error(
        self,
        attachment: _Attachment,
        request: AWSPreparedRequest,
        call: Call,
        status: int,
        code: str,
        fault: Literal["Sender", "Receiver"],
    ) -> AWSResponse:
        """An AWS JSON protocol error, as the service would answer it; query-compatible services
        (SQS) also name the error in `x-amzn-query-error`, which botocore's parser reads."""
        namespace = self._errors(call.service).namespace
        payload = {"__type": f"{namespace}{code}", "message": f"injected: {code}"}
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-RequestId": f"fault-{uuid.uuid4()}",
        }
        if attachment.query_compatible:
            headers["x-amzn-query-error"] = f"{code};{fault}"
        return AWSResponse(
            request.url,
            status,
            HTTPHeaders.from_dict(headers),
            _Body(json.dumps(payload).encode()),
        )
