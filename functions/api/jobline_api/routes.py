"""Routes: parse, one service call (boto3 in a worker thread, awaited), schema out."""

from __future__ import annotations

from asyncio import to_thread
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from jobline.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from jobline.models import Job, JobFilter, JobStatus, SubmitRequest
from jobline.service import JobService

from jobline_api.correlation import correlation_id
from jobline_api.dependencies import (
    base_path,
    body_within_limit,
    current_owner,
    get_job_service,
    only_query,
)
from jobline_api.schemas import (
    SUBMIT_UNAVAILABLE,
    Health,
    JobOut,
    JobPageOut,
    JobTypeOut,
    UploadOut,
    error_responses,
)

router = APIRouter()
NO_QUERY = [Depends(only_query())]

Service = Annotated[JobService, Depends(get_job_service)]
Owner = Annotated[str, Depends(current_owner)]
_LOCATION = {
    "Location": {
        "description": "the job's URL",
        "required": True,
        "schema": {"type": "string"},
    }
}


async def _job_out(service: JobService, job: Job) -> JobOut:
    """The public view of `job`, with presigned links to what the data bucket keeps of it
    (signing may first build the S3 client: in a worker thread)."""
    if job.payload_ref is None and job.result_ref is None:
        return JobOut.of(job)
    return JobOut.of(job, await to_thread(service.links, job))


@router.get("/health", operation_id="health")
async def health() -> Health:
    return Health()


@router.get(
    "/job-types",
    operation_id="list_job_types",
    dependencies=[Depends(current_owner), *NO_QUERY],
    responses=error_responses(401, 422),
)
async def list_job_types(service: Service) -> list[JobTypeOut]:
    return [JobTypeOut.of(job_type) for job_type in service.job_types()]


@router.post(
    "/jobs",
    operation_id="submit_job",
    status_code=202,
    dependencies=[*NO_QUERY, Depends(body_within_limit)],
    responses={
        202: {"description": "submitted", "headers": _LOCATION},
        200: {
            "model": JobOut,
            "description": "idempotent replay",
            "headers": _LOCATION,
        },
        **error_responses(400, 401, 409, 413, 422),
        503: SUBMIT_UNAVAILABLE,
    },
)
async def submit_job(
    request: SubmitRequest,
    response: Response,
    service: Service,
    owner: Owner,
    prefix: Annotated[str, Depends(base_path)],
    correlation: Annotated[str, Depends(correlation_id)],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> JobOut:
    submitted = await to_thread(
        service.submit, owner, request, idempotency_key, correlation
    )
    response.status_code = 202 if submitted.created else 200
    response.headers["Location"] = f"{prefix}/jobs/{submitted.job.id}"
    return await _job_out(service, submitted.job)


@router.post(
    "/uploads",
    operation_id="create_upload",
    status_code=201,
    dependencies=NO_QUERY,
    responses=error_responses(401, 422, 503),
)
async def create_upload(service: Service, owner: Owner) -> UploadOut:
    return UploadOut.of(await to_thread(service.new_upload, owner))


@router.get(
    "/jobs",
    operation_id="list_jobs",
    dependencies=[Depends(only_query("status", "type", "limit", "cursor"))],
    responses=error_responses(400, 401, 422, 503),
)
async def list_jobs(
    service: Service,
    owner: Owner,
    status: JobStatus | None = None,
    type: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> JobPageOut:
    page = await to_thread(
        service.list_jobs, owner, JobFilter(status=status, type=type), limit, cursor
    )
    return JobPageOut.of(page)


@router.get(
    "/jobs/{job_id}",
    operation_id="get_job",
    dependencies=NO_QUERY,
    responses=error_responses(401, 404, 422, 503),
)
async def get_job(job_id: str, service: Service, owner: Owner) -> JobOut:
    return await _job_out(service, await to_thread(service.get, owner, job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    operation_id="cancel_job",
    dependencies=NO_QUERY,
    responses={
        200: {"description": "queued: cancelled"},
        202: {"model": JobOut, "description": "running: cancellation requested"},
        **error_responses(401, 404, 409, 422, 503),
    },
)
async def cancel_job(
    job_id: str, response: Response, service: Service, owner: Owner
) -> JobOut:
    job = await to_thread(service.cancel, owner, job_id)
    response.status_code = 202 if job.status is JobStatus.RUNNING else 200
    return await _job_out(service, job)


@router.post(
    "/jobs/{job_id}/retry",
    operation_id="retry_job",
    dependencies=NO_QUERY,
    responses=error_responses(401, 404, 409, 422, 503),
)
async def retry_job(job_id: str, service: Service, owner: Owner) -> JobOut:
    return await _job_out(service, await to_thread(service.retry, owner, job_id))
