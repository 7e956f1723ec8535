"""AWS calls per job: the functions' own clients count their operations (deterministic).

Submit goes through the API handler, its message is sent by the outbox dispatcher (the stream's
event source mapping hands it the write; one message, so its SendMessageBatch counts once), the
run goes through the worker handler with the message the event source mapping received (its receive and delete are not the function's calls), and the
duplicate is the same record delivered again after the job finished.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.inprocess import CallCounter, Context, Functions, attribute, quiet


@dataclass(frozen=True)
class CallCounts:
    submit: list[str]
    dispatch: list[str]
    run: list[str]
    duplicate: list[str]

    @property
    def per_job(self) -> int:
        """Every call from submit to success; a batched send counts once per message."""
        return len(self.submit) + len(self.dispatch) + len(self.run)


def measure(functions: Functions) -> CallCounts:
    counter = CallCounter(functions.clients())
    try:
        with quiet():
            job = functions.submit({"type": "echo", "payload": {"n": 1}})
            submit = counter.take()
            functions.dispatch()
            dispatch = counter.take()
            [message] = functions.receive(1)
            event = functions.sqs_event([message])
            first = functions.worker(event, Context("WorkerFunction", 120))
            run = counter.take()
            again = functions.worker(event, Context("WorkerFunction", 120))
            duplicate = counter.take()
            functions.delete([message])
    finally:
        counter.close()
    item = functions.job(job["id"])
    if first != {"batchItemFailures": []} or again != {"batchItemFailures": []}:
        raise RuntimeError(f"unexpected batch responses {first!r} {again!r}")
    if attribute(item, "status") != "succeeded":
        raise RuntimeError(f"the echo job did not succeed: {item!r}")
    return CallCounts(submit=submit, dispatch=dispatch, run=run, duplicate=duplicate)
