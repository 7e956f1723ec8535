"""Flow control's routes (issue 18, docs/flow-control.md): the caller's limits, an admin's
override of one, pausing and resuming a job type. `POST /jobs?dry_run=true` and `blocked_on` on
`GET /jobs/{id}` are in `jobline_api.routes` (the job routes)."""

from __future__ import annotations

from asyncio import to_thread
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from jobline.errors import ConfigurationError
from jobline.flow import MAX_LIMIT, BlockedOn
from jobline.models import Job
from jobline.service import JobService
from jobline.usecases.flow_admin import DryRun, FlowAdmin
from pydantic import BaseModel, ConfigDict, Field

from jobline_api.dependencies import current_owner, get_job_service, only_query
from jobline_api.schemas import error_responses

router = APIRouter()

Service = Annotated[JobService, Depends(get_job_service)]
Owner = Annotated[str, Depends(current_owner)]
GROUP_CLAIMS = ("cognito:groups", "groups")
"""The JWT claims naming the caller's groups (Cognito's, or a generic OIDC provider's)."""


def flow_of(service: JobService) -> FlowAdmin:
    """The service's flow control, or 503 when this deployment runs without it."""
    if service.flow is None:
        raise ConfigurationError(
            "flow control is off (JOBLINE_CONTROL_TABLE_NAME is unset)"
        )
    return service.flow


def _groups(request: Request) -> set[str]:
    event = request.scope.get("aws.event")
    claims: Any = (
        (event or {})
        .get("requestContext", {})
        .get("authorizer", {})
        .get("jwt", {})
        .get("claims", {})
        if isinstance(event, dict)
        else {}
    )
    groups: set[str] = set()
    for name in GROUP_CLAIMS:
        value = claims.get(name) if isinstance(claims, dict) else None
        if isinstance(value, str):
            # API Gateway hands a list claim over as "[a b]" text
            groups.update(value.strip("[]").replace(",", " ").split())
        elif isinstance(value, list):
            groups.update(str(item) for item in value)
    return groups


async def is_admin(request: Request, owner: Owner) -> bool:
    """Whether the caller is an admin: in JOBLINE_ADMINS, or in the JWT group
    JOBLINE_ADMIN_GROUP (docs/flow-control.md)."""
    admins: tuple[str, ...] = getattr(request.app.state, "admins", ())
    group: str | None = getattr(request.app.state, "admin_group", None)
    if owner in admins:
        return True
    return group is not None and group in _groups(request)


Admin = Annotated[bool, Depends(is_admin)]


class KeyOut(BaseModel):
    """A concurrency key a submit would meet."""

    name: str
    key: str
    limit: int
    override: int | None
    held: int
    waiting: int
    on_limit: str


class LimitOut(BaseModel):
    """A declared limit, with the caller's key where it depends on the caller only."""

    job_type: str
    kind: str
    name: str
    key_template: str
    limit: int
    override: int | None
    on_limit: str
    key: str | None = None
    held: int | None = None
    waiting: int | None = None
    period_s: float | None = None
    burst: int | None = None


class PauseOut(BaseModel):
    """A pause in force."""

    job_type: str
    owner: str | None
    since: datetime


class LimitsOut(BaseModel):
    """`GET /limits`."""

    limits: list[LimitOut]
    pauses: list[PauseOut]


class DryRunOut(BaseModel):
    """`POST /jobs?dry_run=true`: what the submit would meet; nothing was written."""

    dry_run: bool = True
    type: str
    lane: str
    keys: list[KeyOut]
    rate_limits: list[LimitOut]
    paused: bool
    estimated_start: datetime
    estimated_cost_usd: float
    wait_reasons: list[str]

    @classmethod
    def of(cls, answer: DryRun) -> DryRunOut:
        """The public view of a dry run."""
        return cls(
            type=answer.job_type,
            lane=answer.lane,
            keys=[KeyOut(**key.__dict__) for key in answer.keys],
            rate_limits=[LimitOut(**rate.__dict__) for rate in answer.rates],
            paused=answer.paused,
            estimated_start=answer.estimated_start,
            estimated_cost_usd=answer.estimated_cost_usd,
            wait_reasons=answer.wait_reasons,
        )


class LimitIn(BaseModel):
    """`PUT /limits/{name}`: the override (null: back to the declarations)."""

    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(ge=1, le=MAX_LIMIT)


class LimitSetOut(BaseModel):
    """`PUT /limits/{name}`'s answer: the override now in force (null: none)."""

    name: str
    limit: int | None


class PausedOut(BaseModel):
    """A pause or resume's answer."""

    job_type: str
    everyone: bool
    paused: bool
    woken: int = 0


@router.get(
    "/limits",
    operation_id="list_limits",
    dependencies=[Depends(only_query())],
    responses=error_responses(401, 422, 503),
)
async def list_limits(service: Service, owner: Owner) -> LimitsOut:
    limits, pauses = await to_thread(flow_of(service).limits, owner)
    return LimitsOut(
        limits=[LimitOut(**view.__dict__) for view in limits],
        pauses=[PauseOut(**pause.__dict__) for pause in pauses],
    )


@router.put(
    "/limits/{name}",
    operation_id="set_limit",
    dependencies=[Depends(only_query())],
    responses=error_responses(400, 401, 403, 404, 422, 503),
)
async def set_limit(
    name: str, body: LimitIn, service: Service, admin: Admin
) -> LimitSetOut:
    await to_thread(flow_of(service).set_limit, admin, name, body.limit)
    return LimitSetOut(name=name, limit=body.limit)


@router.post(
    "/job-types/{job_type}/pause",
    operation_id="pause_job_type",
    dependencies=[Depends(only_query("everyone"))],
    responses=error_responses(401, 403, 404, 422, 503),
)
async def pause_job_type(
    job_type: str,
    service: Service,
    owner: Owner,
    admin: Admin,
    everyone: Annotated[bool, Query()] = False,
) -> PausedOut:
    await to_thread(flow_of(service).pause, owner, admin, job_type, everyone)
    return PausedOut(job_type=job_type, everyone=everyone, paused=True)


@router.post(
    "/job-types/{job_type}/resume",
    operation_id="resume_job_type",
    dependencies=[Depends(only_query("everyone"))],
    responses=error_responses(401, 403, 404, 422, 503),
)
async def resume_job_type(
    job_type: str,
    service: Service,
    owner: Owner,
    admin: Admin,
    everyone: Annotated[bool, Query()] = False,
) -> PausedOut:
    woken = await to_thread(flow_of(service).resume, owner, admin, job_type, everyone)
    return PausedOut(job_type=job_type, everyone=everyone, paused=False, woken=woken)


def explained(service: JobService, job: Job) -> BlockedOn | None:
    """`blocked_on` as GET /jobs/{id} shows it (with its position), when flow control is on."""
    return service.flow.explain(job) if service.flow is not None else job.blocked_on
