"""Every number Jobline's behaviour depends on, said once: what AWS allows, and the defaults and
bounds of the deployment's settings. Settings (`jobline.config`), the models, the adapters, the
OpenAPI document, the docs' tables and the tests read them here. Pure constants."""

from __future__ import annotations

# ------------------------------------------------------------------------- what AWS allows
SQS_MAX_DELAY_S = 900
"""SQS delays a message by at most 15 minutes (SendMessage `DelaySeconds`)."""
SQS_MAX_VISIBILITY_S = 43_200
"""ChangeMessageVisibility accepts at most 12 hours."""
SQS_MAX_BATCH = 10
"""SendMessageBatch and ReceiveMessage take at most ten messages."""
LAMBDA_MAX_TIMEOUT_S = 900
"""A Lambda invocation runs at most 15 minutes."""
LAMBDA_MAX_SYNC_RESPONSE_BYTES = 6 * 1024 * 1024
"""A synchronous Lambda invocation answers with at most 6 MB (the API's responses)."""
DYNAMODB_MAX_ITEM_BYTES = 400 * 1024
"""A DynamoDB item holds at most 400 KB."""
LAMBDA_MAX_SYNC_REQUEST_BYTES = 6 * 1024 * 1024
"""A synchronous Lambda invocation takes an event of at most 6 MB: the HTTP API's request to the
API function, its body escaped into the event's JSON (API Gateway's own 10 MB limit never
applies first)."""
HTTP_API_MAX_REQUEST_BYTES = 10 * 1024 * 1024
"""An HTTP API request carries at most 10 MB (API Gateway's quota, not adjustable)."""
S3_PRESIGN_MAX_EXPIRY_S = 7 * 24 * 3600
"""A SigV4 presigned S3 URL is valid for at most 7 days."""

# ------------------------------------------------------------------------------- job limits
MIN_ATTEMPTS = 1
MAX_ATTEMPTS = 20
DEFAULT_MAX_ATTEMPTS = 3
MAX_DELAY_S = SQS_MAX_DELAY_S
"""A submit's `delay_seconds` is at most what SQS can delay its message by."""
MAX_HISTORY = 100
"""A job keeps at most this many attempts; a retry past it is refused."""
MAX_RETRY_DELAY_S = SQS_MAX_VISIBILITY_S
"""No retry waits longer than what the jobs queue can hold a message back for."""

# ------------------------------------------------------------------- settings: defaults, bounds
RETENTION_DAYS = 30
"""Finished jobs are kept this long (the table's TTL)."""
MAX_RETENTION_DAYS = 3650
MAX_PAYLOAD_BYTES = 5 * 1024 * 1024
"""A job's payload, as canonical JSON (the default of `JOBLINE_MAX_PAYLOAD_BYTES`): over
`INLINE_DATA_BYTES` it is kept in the data bucket (the claim check, `jobline.usecases.claim_check`)."""
MAX_PAYLOAD_BYTES_BOUND = MAX_PAYLOAD_BYTES
"""The most `JOBLINE_MAX_PAYLOAD_BYTES` may be set to."""
MAX_RESULT_BYTES = 50 * 1024 * 1024
"""A handler's result, as canonical JSON (the default of `JOBLINE_MAX_RESULT_BYTES`): over
`INLINE_DATA_BYTES` it is kept in the data bucket."""
MAX_RESULT_BYTES_BOUND = MAX_RESULT_BYTES
"""The most `JOBLINE_MAX_RESULT_BYTES` may be set to (the worker holds the result, its JSON text
and its bytes in memory at once: 512 MB leave room for three copies of 50 MB and the handler's)."""
RETRY_BASE_S = 2.0
"""Backoff base: attempt n waits up to base * 2**(n-1)."""
RETRY_CAP_S = 900.0
"""Backoff cap."""
PROGRESS_INTERVAL_S = 1.0
"""At most one progress write and one cancel read per job per interval."""
DEADLINE_MARGIN_MS = 12_000
"""Handlers stop this long before the Lambda deadline: room for the outcome write."""

# ------------------------------------------------------------------- target functions
FUNCTION_READ_TIMEOUT_S = LAMBDA_MAX_TIMEOUT_S
"""The Lambda client's read timeout: a target function may run as long as Lambda allows. The
attempt's own deadline stops the wait sooner (the worker's run ends there)."""
FUNCTION_INVOKE_TRIES = 3
"""Tries of one invocation that Lambda answered without running the function (throttled, 5xx, no
connection), while the attempt has time; a lost answer is never tried again blindly."""
FUNCTION_RETRY_BASE_S = 0.25
"""The pause before the second try of an invocation (then doubled, with jitter)."""
FUNCTION_ERROR_TYPE_CHARS = 256
FUNCTION_ERROR_MESSAGE_CHARS = 4096
"""A function's `errorType` and `errorMessage` as a job error keeps them (the rest is cut)."""
# ------------------------------------------------------------------------ claim check (S3)
INLINE_DATA_BYTES = 64 * 1024
"""A payload or a result up to this size (canonical JSON) is kept in the job's item; a larger one
in the data bucket, the item keeping a reference (key, size, sha256). With the error and history
bounds below, the item stays under `DYNAMODB_MAX_ITEM_BYTES` whatever a job holds
(tests/unit/test_item_size.py)."""
MAX_REQUEST_BODY_BYTES = 1024 * 1024
"""`POST /jobs` takes a body of at most 1 MiB; a larger payload is uploaded first
(`POST /uploads`). The HTTP API would pass 10 MB, but the Lambda event that carries the body is
limited to `LAMBDA_MAX_SYNC_REQUEST_BYTES`, and a body escaped into it can triple (`\\u` escapes
of four-byte characters): 1 MiB x 3, plus 10 KB of headers, leaves room under 6 MB."""
DATA_URL_TTL_S = 600
"""A presigned URL (a payload's or a result's download, an upload form) is valid this long, or
less if the signing function's session credentials expire first."""
UPLOAD_RETENTION_DAYS = 1
"""An uploaded payload no submit named is deleted by the bucket's lifecycle after this."""
DATA_EXPIRY_MARGIN_DAYS = 16
"""The data bucket keeps a payload or a result at least this much longer than the job's retention
(`DataExpirationDays` >= `RetentionDays` + this): an object counts its days from its write (the
submit, a retry, the result) and a job from its end, and between the two are at most the 14 days
an SQS message (a run) lives, then the up to 2 days DynamoDB's TTL takes to delete the item."""

# ------------------------------------------------------------------------------------ errors
MAX_ERROR_TEXT_BYTES = 8 * 1024
"""A job's error keeps at most this much of its message (UTF-8), its type a tenth of it: a
handler's exception text can be any size, the item cannot."""
MAX_ATTEMPT_ERROR_TEXT_BYTES = 1024
"""A history entry's error keeps at most this much of its message, its type a tenth of it
(`MAX_HISTORY` entries share the item)."""

# ----------------------------------------------------------------------------------- listings
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
"""A listing page holds at most this many jobs."""
LIST_PAGE_MAX_BYTES = 1024 * 1024
"""A listing page stops before its items' encoded JSON would pass this: a sixth of what a Lambda
answer may hold (`LAMBDA_MAX_SYNC_RESPONSE_BYTES`), so the page stays under it even after the
runtime escapes the body into its own JSON (at most 3x: `\\u00e9` for `é`)."""
SUMMARY_TEXT_CHARS = 1024
"""A listing's summary keeps at most this many characters of a job's error type and message
(`error_truncated` says when it cut them; the job itself has the whole error)."""

# ------------------------------------------------------------------------------------- fences
MAX_CONTROL_TOKENS = 8
"""A job remembers the tokens of its latest API writes (submit, cancel, retry, redrive), so a
write whose answer was lost recognises itself; older ones are forgotten (the item stays small)."""
MAX_CONTROL_DECISIONS = 4
"""A cancel or retry that finds the job changed under it reads the new state and decides again,
at most this many times (then the caller is told to try again)."""

# ------------------------------------------------------------------- lanes, checkpoints
DEFAULT_TIMEOUT_S = 60
"""How long one attempt of a job type may run when its declaration says nothing (`timeout_s`)."""
WORKER_TIMEOUT_S = 120
"""The default lane's worker function's Timeout (template.yaml; a test keeps them equal)."""
LONG_WORKER_TIMEOUT_S = LAMBDA_MAX_TIMEOUT_S
"""The long lane's worker function's Timeout: Lambda's 15 minutes."""
MAX_CHECKPOINT_BYTES = 32 * 1024
"""A handler's saved state (`context.checkpoint`, `Continue`), as JSON: it lives on the job's item
beside a payload and a result, which the item's 400 KB must hold together."""
MAX_RUNTIME_S = 7 * 24 * 3600
"""The longest `max_runtime_s` a job type may declare for its chain of invocations (a week)."""
