"""An attempt of a job type declared with a target (`JobType.target`): the function is invoked with
the job's event instead of a handler being run, in a thread of its own until the attempt's
deadline (as a plain handler runs: the invocation is I/O, and a function still running at the
deadline is left to finish while the attempt ends `DeadlineExceeded`). Its answer is the
handler's outcome: the result, or the error it raised (`jobline.targets.result_of`), or what
kept Lambda from running it (`FunctionInvokeFailed`)."""

from __future__ import annotations

from typing import Any

from jobline.errors import JobHandlerError
from jobline.models import Job
from jobline.ports import FunctionInvoker
from jobline.registry import JobContext, JobType
from jobline.targets import (
    LambdaTarget,
    LocalLambdaContext,
    call_like_lambda,
    epoch_deadline,
    result_of,
    target_event,
)
from jobline.usecases.checkpoints import HandlerOutcome, run_until_deadline


def invoke_target(
    invoker: FunctionInvoker | None,
    job_type: JobType[Any],
    job: Job,
    payload: Any,
    context: JobContext,
    deadline: float,
) -> HandlerOutcome:
    """Invoke `job_type`'s target for `job` on `payload` (its own, read from the data bucket when
    kept there) until `deadline` (`time.monotonic()`): a Lambda ARN
    through `invoker`, a `local:` callable in this process as Lambda's Python runtime would."""

    def invoke() -> Any:
        event_payload = job_type.parse(payload).model_dump(mode="json", by_alias=True)
        event = target_event(
            job_id=job.id,
            job_type=job.type,
            attempt=job.attempts,
            run=job.run,
            payload=event_payload,
            deadline=epoch_deadline(deadline),
        )
        function = job_type.function
        if isinstance(function, LambdaTarget):
            if invoker is None:
                raise JobHandlerError(
                    "this worker has no function invoker (its composition root gave none)"
                )
            answer = invoker.invoke(function.arn, event, deadline=deadline)
        else:
            stand_in = LocalLambdaContext(
                function_name=job.type, deadline=epoch_deadline(deadline)
            )
            answer = call_like_lambda(job_type.resolve(), event, stand_in)
        return result_of(answer)

    return run_until_deadline(invoke, context, deadline)
