"""Schemathesis against the API app in-process, as deployed (the JWT authorizer's stand-in in
front, no development identity; the in-memory fakes behind): every operation with valid and
invalid data, then stateful runs following the spec's links (submit -> get, cancel, retry), every
built-in check on every response (`ignored_auth` removes and forges the token), plus an
object-level authorization check with two owners: whatever alice gets at a job, bob gets a 404
for, and never sees in his listing.

Bounded to about a minute (FUZZ_EXAMPLES examples per operation and mode, FUZZ_SCENARIOS
stateful scenarios); the figures are printed at the end (`pytest -s`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from jobline.service import JobService
from jobline_api.app import create_app
from requests.structures import CaseInsensitiveDict
from schemathesis import Case as AnyCase
from schemathesis import CheckContext, GenerationMode, Response
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.support.events import JwtAuthorizerStandIn
from tests.support.services import build_fake_service

Case = AnyCase[Any]
TOKENS = {"alice-token-1f2e": "alice", "bob-token-9c8d": "bob"}
OWNER = {"Authorization": "Bearer alice-token-1f2e"}
OTHER = {"Authorization": "Bearer bob-token-9c8d"}
FUZZ_EXAMPLES = 100
FUZZ_SCENARIOS = 60
JOB_OPERATIONS = frozenset({"get_job", "cancel_job", "retry_job", "submit_job"})


@dataclass
class Tally:
    """What the run did: requests per operation, and the authorization probes made."""

    requests: dict[str, int] = field(default_factory=dict)
    probes: int = 0
    scenarios: int = 0
    no_invalid_input: list[str] = field(default_factory=list)
    failures: int = 0

    def count(self, case: Case) -> None:
        label = case.operation.label
        self.requests[label] = self.requests.get(label, 0) + 1


TALLY = Tally()


def _fresh_service() -> JobService:
    return build_fake_service(max_payload_bytes=4096)[0]


@pytest.fixture(scope="module")
def app() -> Iterator[JwtAuthorizerStandIn]:
    application = create_app(service_factory=_fresh_service, allow_dev_identity=False)
    with TestClient(application):  # the lifespan attaches a service
        yield JwtAuthorizerStandIn(application, TOKENS)


CONFIG = {
    "operations": [
        {
            # A cursor is opaque and signed: text that fits its schema but that this API did
            # not issue is refused, 400 (documented); no schema can say which text it issued.
            "include-path": "/jobs",
            "include-method": "GET",
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "404", "409"]
                }
            },
        }
    ]
}


class AliceToken:
    """Schemathesis' auth provider: every request is alice's (with a JWT the stand-in knows),
    so `ignored_auth` knows the credentials are real and probes without and with forged ones."""

    def get(self, case: Case, ctx: schemathesis.AuthContext) -> str:
        return OWNER["Authorization"]

    def set(self, case: Case, data: str, ctx: schemathesis.AuthContext) -> None:
        if case.headers is None:
            case.headers = CaseInsensitiveDict()
        case.headers["Authorization"] = data


@pytest.fixture(scope="module")
def api(app: Any) -> OpenApiSchema:
    config = schemathesis.Config.from_dict(CONFIG)
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=config, headers=OWNER
    )
    schema.auth(refresh_interval=None)(AliceToken)
    return schema


@pytest.fixture(scope="module")
def other_owner(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module", autouse=True)
def figures(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        total = sum(TALLY.requests.values())
        reporter.write_line(
            f"\nschemathesis: {total} requests over {len(TALLY.requests)} operations "
            f"({TALLY.scenarios} stateful scenarios, {TALLY.probes} authorization probes "
            f"as a second owner), {TALLY.failures} failures"
        )
        for label, count in sorted(TALLY.requests.items()):
            reporter.write_line(f"  {count:5d}  {label}")
        if TALLY.no_invalid_input:
            reporter.write_line(
                "  no invalid input exists for: " + ", ".join(TALLY.no_invalid_input)
            )


def _all_checks() -> list[Any]:
    load_all_checks()
    return list(CHECKS.get_all())


def _job_ids(response: Response) -> list[str]:
    """The job ids an answer shows the caller: one job, or a page of them."""
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return [body["id"]]
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return [item["id"] for item in body["items"] if isinstance(item, dict)]
    return []


def owners_cannot_reach_each_others_jobs(client: TestClient) -> Any:
    """A check: for every job alice was shown, bob's get, cancel and retry are 404 and his
    listing does not have it (nothing he does may change it either)."""

    def check(ctx: CheckContext, response: Response, case: Case) -> bool | None:
        sent = response.request.headers.get("Authorization")
        if sent != OWNER["Authorization"]:
            return None
        if not 200 <= response.status_code < 300:
            return None
        for job_id in _job_ids(response):
            TALLY.probes += 1
            for method, path in (
                ("GET", f"/jobs/{job_id}"),
                ("POST", f"/jobs/{job_id}/cancel"),
                ("POST", f"/jobs/{job_id}/retry"),
            ):
                probe = client.request(method, path, headers=OTHER)
                assert probe.status_code == 404, (
                    f"bob's {method} {path} of alice's job answered {probe.status_code}"
                )
            listing = client.get("/jobs", params={"limit": 100}, headers=OTHER).json()
            assert job_id not in [item["id"] for item in listing["items"]], (
                f"alice's job {job_id} is in bob's listing"
            )
        return True

    return check


FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(
    api: OpenApiSchema, other_owner: TestClient, mode: GenerationMode
) -> None:
    checks = _all_checks()
    authorization = owners_cannot_reach_each_others_jobs(other_owner)
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == 8

    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Case) -> None:
            TALLY.count(case)
            case.call_and_validate(checks=checks, additional_checks=[authorization])

        try:
            run()
        except Unsatisfiable:
            # Nothing about this operation can be invalid (no body, no constrained parameter)
            assert mode is GenerationMode.NEGATIVE
            TALLY.no_invalid_input.append(operation.label)
        except BaseException:
            TALLY.failures += 1
            raise


def test_stateful_runs_follow_the_links_between_submit_get_cancel_and_retry(
    api: OpenApiSchema, app: JwtAuthorizerStandIn, other_owner: TestClient
) -> None:
    checks = _all_checks()
    authorization = owners_cannot_reach_each_others_jobs(other_owner)

    class JobLinks(api.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Every scenario starts from an empty store, so a replayed scenario sees what the
            # first run saw (Hypothesis replays them to shrink)
            app.app.state.service = _fresh_service()
            TALLY.scenarios += 1

        def before_call(self, case: Case) -> None:
            TALLY.count(case)

        def validate_response(
            self,
            response: Response,
            case: Case,
            additional_checks: list[Any] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(
                response,
                checks=checks,
                additional_checks=[authorization],
                transport_kwargs=kwargs,
            )

    try:
        _run_scenarios(JobLinks)
    except BaseException:
        TALLY.failures += 1
        raise
    linked = {
        "GET /jobs/{job_id}",
        "POST /jobs/{job_id}/cancel",
        "POST /jobs/{job_id}/retry",
    }
    assert linked <= set(TALLY.requests)


def _run_scenarios(machine: Any) -> None:
    machine.run(
        settings=settings(
            max_examples=FUZZ_SCENARIOS,
            stateful_step_count=8,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
