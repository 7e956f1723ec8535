"""The claim check: payloads and results over `INLINE_DATA_BYTES` kept in the data bucket, the
job's item naming them; written before the item names them; read, checked and linked."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from jobline.aws.items import item_to_job, job_to_item
from jobline.bootstrap import build_service
from jobline.config import Settings
from jobline.errors import (
    ConfigurationError,
    InvalidPayload,
    PayloadTooLarge,
    StorageUnavailable,
    UploadNotFound,
)
from jobline.limits import DATA_EXPIRY_MARGIN_DAYS, DATA_URL_TTL_S, INLINE_DATA_BYTES
from jobline.models import DataRef, JobStatus, SubmitRequest
from jobline.registry import JobContext, JobTypeRegistry
from jobline.service import JobService, RunOutcome
from jobline.usecases.claim_check import (
    payload_key,
    result_key,
    upload_key,
)
from jobline.validation import canonical_json
from pydantic import ValidationError

from tests.support.builders import ANN, BOB, delivery_of
from tests.support.fakes import (
    START,
    FakeClock,
    InMemoryBlobStore,
    InMemoryJobQueue,
    InMemoryJobRepository,
    job_type_of,
)
from tests.support.services import build_fake_service, build_registry, fake_options

pytestmark = pytest.mark.usefixtures("handler_kind")
"""Every test here runs with a plain handler and with an `async def` one (the worker's tests need
both; tests.support.handlers)."""

Stack = tuple[JobService, InMemoryJobRepository, InMemoryJobQueue, InMemoryBlobStore]


def large(size: int = INLINE_DATA_BYTES + 1) -> dict[str, str]:
    """A payload whose canonical JSON takes `size` bytes (over the inline bound by default)."""
    value = {"data": "x" * (size - len('{"data":""}'))}
    assert len(canonical_json(value).encode()) == size
    return value


def data_of(value: Any) -> bytes:
    return canonical_json(value).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def registry_of(handler: Any = None) -> JobTypeRegistry:
    """The built-in types and `t` (`handler`, default: the payload back)."""
    return build_registry(
        [job_type_of("t", handler or (lambda payload, context: payload.root))]
    )


def stack(
    handler: Any = None, *, clock: FakeClock | None = None, **options: Any
) -> Stack:
    """A service over fakes, its data bucket included, with the type `t` (`registry_of`)."""
    store = InMemoryBlobStore()
    service, repo, queue = build_fake_service(
        registry_of(handler),
        clock=clock or FakeClock(step=timedelta(seconds=1)),
        blobs=store,
        **options,
    )
    return service, repo, queue, store


def bucketless(handler: Any = None) -> tuple[JobService, InMemoryJobRepository]:
    """A service of a deployment without a data bucket (`JOBLINE_DATA_BUCKET` unset)."""
    repo = InMemoryJobRepository()
    service = build_service(
        options=fake_options(),
        repository=repo,
        queue=InMemoryJobQueue(),
        registry=registry_of(handler),
        clock=FakeClock(),
    )
    return service, repo


def upload(
    store: InMemoryBlobStore, service: JobService, owner: str, data: bytes
) -> str:
    """What a caller does: ask for an upload form, then POST the file to it."""
    form = service.new_upload(owner)
    sent = store.handle(
        httpx.Request(
            "POST",
            form.url,
            data=form.fields,
            files={"file": ("payload.json", data, "application/json")},
        )
    )
    assert sent.status_code == 204
    return form.upload_id


# ----------------------------------------------------------------------------- submit


def test_a_payload_within_the_inline_bound_stays_in_the_item() -> None:
    service, repo, _, store = stack()
    payload = large(INLINE_DATA_BYTES)

    job = service.submit(ANN, SubmitRequest(type="t", payload=payload)).job

    assert (job.payload, job.payload_ref) == (payload, None)
    assert repo.get(job.id) == job
    assert store.puts == []


def test_a_larger_payload_is_written_to_the_bucket_before_the_item_names_it() -> None:
    # Given a payload one byte over what the item holds
    service, repo, _, store = stack()
    payload = large()
    writes: list[str] = []

    def before_put(key: str) -> None:
        writes.append(f"object:{key}")
        assert repo.jobs == []  # no item yet

    store.before_put = before_put

    # When it is submitted
    job = service.submit(ANN, SubmitRequest(type="t", payload=payload)).job

    # Then its canonical JSON is in the bucket under its job and digest, and the item holds a
    # reference (key, size, sha256) instead of it
    data = data_of(payload)
    key = payload_key(job.id, sha(data))
    assert writes == [f"object:{key}"]
    assert store.objects[key] == data
    stored = repo.get(job.id)
    assert stored is not None and stored.payload is None
    assert stored.payload_ref is not None
    assert (
        stored.payload_ref.key,
        stored.payload_ref.size,
        stored.payload_ref.sha256,
    ) == (
        key,
        len(data),
        sha(data),
    )


def test_a_bucket_that_fails_the_write_stores_no_job() -> None:
    service, repo, _, store = stack()
    store.fail_with = "SlowDown"

    with pytest.raises(StorageUnavailable):
        service.submit(ANN, SubmitRequest(type="t", payload=large()))

    assert repo.jobs == []


def test_a_conflicting_request_never_replaces_the_jobs_payload() -> None:
    # Given a job submitted with a large payload under an idempotency key
    service, repo, _, store = stack()
    first = service.submit(ANN, SubmitRequest(type="t", payload=large()), "k").job
    assert first.payload_ref is not None
    kept = store.objects[first.payload_ref.key]

    # When the same key comes with another large payload, then with the first again
    other = {"data": "y" * INLINE_DATA_BYTES}
    with pytest.raises(Exception, match="idempotency key"):
        service.submit(ANN, SubmitRequest(type="t", payload=other), "k")
    replay = service.submit(ANN, SubmitRequest(type="t", payload=large()), "k")

    # Then the job's payload object is untouched (the other one went under its own digest),
    # and the replay is the original job
    assert store.objects[first.payload_ref.key] == kept
    assert not replay.created and replay.job == repo.get(first.id)


def test_without_a_bucket_a_payload_over_the_inline_bound_is_refused() -> None:
    service, repo = bucketless()
    assert fake_options().data_bucket is None

    with pytest.raises(PayloadTooLarge) as refused:
        service.submit(ANN, SubmitRequest(type="t", payload=large()))

    assert refused.value.limit == INLINE_DATA_BYTES
    assert repo.jobs == []


# ----------------------------------------------------------------------------- uploads


def test_an_uploaded_payload_is_submitted_as_if_it_came_inline() -> None:
    # Given a payload ann uploaded (pretty-printed, as a file would be)
    service, repo, _, store = stack()
    payload = large(3 * INLINE_DATA_BYTES)
    upload_id = upload(store, service, ANN, json.dumps(payload, indent=2).encode())

    # When she submits it by its upload id
    submitted = service.submit(
        ANN, SubmitRequest(type="t", payload_upload=upload_id), "key"
    )

    # Then the job keeps its canonical JSON, like an inline submit of the same payload would:
    # sending it inline with the same key is a replay of this very job
    job = submitted.job
    assert job.payload_ref is not None
    assert store.objects[job.payload_ref.key] == data_of(payload)
    replay = service.submit(ANN, SubmitRequest(type="t", payload=payload), "key")
    assert not replay.created and replay.job.id == job.id
    assert [j.id for j in repo.jobs] == [job.id]


def test_an_upload_is_its_uploaders_only() -> None:
    service, _, _, store = stack()
    upload_id = upload(store, service, ANN, b"{}")

    # bob names ann's upload: he has none by that id
    with pytest.raises(UploadNotFound):
        service.submit(BOB, SubmitRequest(type="t", payload_upload=upload_id))
    # and an id nobody uploaded is not found either
    with pytest.raises(UploadNotFound):
        service.submit(ANN, SubmitRequest(type="t", payload_upload="0" * 32))
    assert upload_key(ANN, upload_id) in store.objects


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "the upload is not JSON"),
        (b"\xff\xfe", "the upload is not JSON"),
        (b'{"x": NaN}', "the upload is not JSON"),
        (b"[" * 100 + b"]" * 100, "nests arrays and objects deeper"),
    ],
)
def test_an_upload_that_is_no_payload_is_invalid(content: bytes, problem: str) -> None:
    service, repo, _, store = stack()
    upload_id = upload(store, service, ANN, content)

    with pytest.raises(InvalidPayload) as refused:
        service.submit(ANN, SubmitRequest(type="t", payload_upload=upload_id))

    [error] = refused.value.errors
    assert error["loc"] == ["payload_upload"] and problem in error["msg"]
    assert repo.jobs == []


def test_an_upload_over_the_payload_limit_is_too_large_unread() -> None:
    service, _, _, store = stack(max_payload_bytes=2 * INLINE_DATA_BYTES)
    form = service.new_upload(ANN)
    assert form.max_bytes == 2 * INLINE_DATA_BYTES
    # (S3 refuses such a file itself; here it got there anyway)
    store.objects[upload_key(ANN, form.upload_id)] = b" " * (2 * INLINE_DATA_BYTES + 1)

    with pytest.raises(PayloadTooLarge):
        service.submit(ANN, SubmitRequest(type="t", payload_upload=form.upload_id))


def test_a_request_carries_a_payload_or_an_upload_never_both() -> None:
    with pytest.raises(ValidationError, match="not both"):
        SubmitRequest(type="t", payload={"a": 1}, payload_upload="0" * 32)
    assert SubmitRequest(type="t", payload_upload="0" * 32).payload == {}


def test_an_upload_form_is_for_one_key_of_the_caller_and_expires() -> None:
    service, _, _, _ = stack(clock=FakeClock())

    form = service.new_upload(ANN)
    other = service.new_upload(ANN)

    assert form.fields["key"] == upload_key(ANN, form.upload_id)
    assert form.upload_id != other.upload_id
    assert form.expires_at == START + timedelta(seconds=DATA_URL_TTL_S)


def test_uploads_need_a_bucket() -> None:
    service, _ = bucketless()
    with pytest.raises(ConfigurationError, match="JOBLINE_DATA_BUCKET"):
        service.new_upload(ANN)


# ----------------------------------------------------------------------------- the worker


def test_the_handler_gets_a_large_payload_read_from_the_bucket() -> None:
    seen: list[Any] = []

    def handler(payload: Any, context: JobContext) -> Any:
        seen.append(payload.root)
        return {"ok": True}

    service, repo, _, _ = stack(handler)
    payload = large(5 * INLINE_DATA_BYTES)
    job = service.submit(ANN, SubmitRequest(type="t", payload=payload)).job

    assert service.run(delivery_of(job)) is RunOutcome.DONE

    assert seen == [payload]
    done = repo.get(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("damage", "error_type"),
    [("delete", "PayloadGone"), ("alter", "PayloadCorrupt")],
)
def test_a_payload_that_is_gone_or_altered_fails_the_job_for_good(
    damage: str, error_type: str
) -> None:
    # Given a job whose payload object was deleted, or changed, after the submit
    calls: list[Any] = []
    service, repo, _, store = stack(lambda payload, context: calls.append(payload))
    job = service.submit(ANN, SubmitRequest(type="t", payload=large())).job
    assert job.payload_ref is not None
    if damage == "delete":
        del store.objects[job.payload_ref.key]
    else:
        data = store.objects[job.payload_ref.key]
        store.objects[job.payload_ref.key] = data[:-2] + b"y}"

    # When the worker runs it
    service.run(delivery_of(job))

    # Then the handler never ran and the job failed at once: no attempt could fix it
    failed = repo.get(job.id)
    assert failed is not None and calls == []
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == error_type
    assert failed.attempts == 1


def test_a_bucket_unavailable_for_the_payload_is_a_retryable_failure() -> None:
    service, repo, queue, store = stack()
    job = service.submit(ANN, SubmitRequest(type="t", payload=large())).job
    store.fail_with = "SlowDown"

    assert service.run(delivery_of(job)) is RunOutcome.REDELIVER

    again = repo.get(job.id)
    assert again is not None and again.status is JobStatus.QUEUED
    assert again.error is not None and again.error.type == "PayloadUnavailable"
    assert queue.visibility  # its message postponed by the backoff


def test_a_large_result_is_written_under_the_claim_before_the_outcome_names_it() -> (
    None
):
    # Given a handler returning a result over what the item holds
    result = large(10 * INLINE_DATA_BYTES)
    service, repo, _, store = stack(lambda payload, context: result)
    job = service.submit(ANN, SubmitRequest(type="t", payload={"n": 1})).job
    statuses: list[JobStatus] = []

    def before_put(key: str) -> None:
        current = repo.get(job.id)
        assert current is not None
        statuses.append(current.status)

    store.before_put = before_put

    # When the worker runs it
    service.run(delivery_of(job))

    # Then the result was written while the job was still running under its claim, then the
    # outcome write named it (key under the job and the claim's lease id, size, sha256)
    done = repo.get(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert statuses == [JobStatus.RUNNING]
    ref = done.result_ref
    data = data_of(result)
    lease = done.history[-1].token
    assert lease is not None and ref is not None and done.result is None
    assert (ref.key, ref.size, ref.sha256) == (
        result_key(job.id, lease),
        len(data),
        sha(data),
    )
    assert store.objects[ref.key] == data


def test_a_stale_attempts_result_object_is_never_named_by_the_job() -> None:
    # Given an attempt whose job another claim takes over while its handler runs
    stores: list[InMemoryJobRepository] = []

    def handler(payload: Any, context: JobContext) -> Any:
        current = stores[0].get(context.job_id)
        assert current is not None
        stores[0].put(current.model_copy(update={"lease_id": "another-claim"}))
        return large()

    service, repo, _, store = stack(handler)
    stores.append(repo)
    job = service.submit(ANN, SubmitRequest(type="t", payload={"n": 1})).job

    # When its handler returns a large result
    service.run(delivery_of(job))

    # Then the object was written, but the fenced outcome write lost: the job names no result
    # (the object is the lifecycle's to delete)
    [key] = [k for k in store.puts if k.startswith("results/")]
    current = repo.get(job.id)
    assert current is not None
    assert (current.status, current.result_ref, current.lease_id) == (
        JobStatus.RUNNING,
        None,
        "another-claim",
    )
    assert key in store.objects


def test_a_bucket_unavailable_for_the_result_is_a_retryable_failure() -> None:
    service, repo, _, store = stack(lambda payload, context: large())
    job = service.submit(ANN, SubmitRequest(type="t", payload={"n": 1})).job
    store.fail_with = "SlowDown"

    assert service.run(delivery_of(job)) is RunOutcome.REDELIVER

    again = repo.get(job.id)
    assert again is not None and again.status is JobStatus.QUEUED
    assert again.error is not None and again.error.type == "ResultNotStored"


def test_without_a_bucket_a_large_result_fails_the_job() -> None:
    service, repo = bucketless(lambda payload, context: large())
    job = service.submit(ANN, SubmitRequest(type="t", payload={"n": 1})).job

    service.run(delivery_of(job))

    failed = repo.get(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == "ResultTooLarge"


# ----------------------------------------------------------------------------- reads, retries


def test_a_read_links_to_what_the_bucket_keeps() -> None:
    clock = FakeClock()
    service, _, _, store = stack(lambda payload, context: large(), clock=clock)
    job = service.submit(ANN, SubmitRequest(type="t", payload=large())).job
    service.run(delivery_of(job))
    done = service.get(ANN, job.id)

    links = service.links(done)

    assert done.payload_ref is not None and done.result_ref is not None
    assert links.payload is not None and links.result is not None
    for link, ref in (
        (links.payload, done.payload_ref),
        (links.result, done.result_ref),
    ):
        assert ref.key in link.url
        assert (link.size, link.sha256) == (ref.size, ref.sha256)
        assert (
            store.handle(httpx.Request("GET", link.url)).content
            == store.objects[ref.key]
        )
        assert link.expires_at == clock.now + timedelta(seconds=DATA_URL_TTL_S)
    small = service.submit(ANN, SubmitRequest(type="t", payload={"n": 1})).job
    assert service.links(small).payload is None and service.links(small).result is None


def test_a_retry_rewrites_the_payload_before_the_job_is_queued_again() -> None:
    # Given a failed job whose payload is in the bucket
    def fail(payload: Any, context: JobContext) -> Any:
        raise ValueError("no")

    service, repo, _, store = stack(fail)
    job = service.submit(
        ANN, SubmitRequest(type="t", payload=large(), max_attempts=1)
    ).job
    service.run(delivery_of(job))
    assert job.payload_ref is not None

    # When it is retried while the bucket is unavailable, nothing changes
    store.fail_with = "SlowDown"
    with pytest.raises(StorageUnavailable):
        service.retry(ANN, job.id)
    failed = repo.get(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED

    # Then once it is back, the retry rewrites the object in place (the lifecycle counts from
    # then) and queues the job
    store.fail_with = None
    retried = service.retry(ANN, job.id)
    assert store.touched == [job.payload_ref.key]
    assert retried.status is JobStatus.QUEUED


def test_an_item_stored_before_the_claim_check_is_a_job_that_holds_its_data() -> None:
    # Given an item as an earlier version wrote it: no references
    service, _, _, _ = stack()
    job = service.submit(ANN, SubmitRequest(type="t", payload={"n": 1})).job
    item = job_to_item(job)
    assert "payload_ref" not in item and "result_ref" not in item

    # Then it reads as a job holding its payload, and a reference round-trips
    assert item_to_job(item).payload == {"n": 1}
    ref = DataRef(key=payload_key(job.id, "0" * 64), size=7, sha256="0" * 64)
    with_ref = job.model_copy(update={"payload": None, "payload_ref": ref})
    assert item_to_job(job_to_item(with_ref)) == with_ref


def test_a_deployment_whose_data_would_expire_before_its_jobs_is_refused() -> None:
    # The bucket's lifecycle must outlast the jobs' retention by the margin: a configuration
    # that would serve a job whose data is gone fails when the settings are read
    def settings(**fields: Any) -> Settings:
        return Settings.model_validate(
            {"table_name": "jobs", "queue_url": "q", **fields}
        )

    margin = DATA_EXPIRY_MARGIN_DAYS
    with pytest.raises(ValidationError, match="DataExpirationDays"):
        settings(
            data_bucket="data", retention_days=90, data_expiration_days=89 + margin
        )
    assert settings(
        data_bucket="data", retention_days=90, data_expiration_days=90 + margin
    )
    # (without a bucket nothing expires, and nothing is checked)
    assert settings(retention_days=90).data_bucket is None
