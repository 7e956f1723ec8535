"""End to end under moto: submit through the API handler's app, run through the worker handler."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import FakeLambdaContext, MotoStack, sqs_event


def test_echo_job_submitted_run_and_succeeded(moto_stack: MotoStack) -> None:
    from jobline_api.app import create_app
    from jobline_worker.handler import lambda_handler

    # Given the API with the development identity enabled
    with TestClient(create_app(allow_dev_identity=True)) as client:
        # When a caller submits an echo job with a float payload
        submitted = client.post(
            "/jobs",
            json={"type": "echo", "payload": {"x": 0.1, "n": 10**30}},
            headers={"X-Dev-User": "ann"},
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert submitted.headers["Location"] == f"/jobs/{job_id}"

        # And the worker handles the queued message
        messages = moto_stack.receive()
        assert len(messages) == 1
        arn = moto_stack.provisioned.queue_arns["JobsQueue"]
        result = lambda_handler(sqs_event(messages, arn), FakeLambdaContext())

        # Then the batch has no failures and the job succeeded with its payload as the result
        assert result == {"batchItemFailures": []}
        job = client.get(f"/jobs/{job_id}", headers={"X-Dev-User": "ann"}).json()
        assert job["status"] == "succeeded"
        assert job["attempts"] == 1
        assert job["result"] == {"x": 0.1, "n": 10**30}
