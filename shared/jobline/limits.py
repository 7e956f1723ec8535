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
MAX_PAYLOAD_BYTES = 64 * 1024
"""A job's payload, as canonical JSON (the default of `JOBLINE_MAX_PAYLOAD_BYTES`)."""
MAX_PAYLOAD_BYTES_BOUND = 256 * 1024
"""The most `JOBLINE_MAX_PAYLOAD_BYTES` may be set to (room for the item's other attributes)."""
MAX_RESULT_BYTES = 128 * 1024
"""A handler's result, as canonical JSON (the default of `JOBLINE_MAX_RESULT_BYTES`)."""
MAX_RESULT_BYTES_BOUND = 300 * 1024
"""The most `JOBLINE_MAX_RESULT_BYTES` may be set to (the item must stay under 400 KB)."""
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
