"""The parts of `make run`'s state that need no stack: the file, which queues are kept, which jobs
get their message again, what a person reads at start and stop, where moto listens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jobline.aws.items import job_to_item
from jobline.models import Job, JobMessage, JobStatus
from jobline_local.banner import render_banner, state_line, stop_line
from jobline_local.settings import LocalSettings
from jobline_local.snapshot import Snapshot, StateError, load, save
from jobline_local.state import (
    StateSummary,
    kept_queues,
    reclaim_messages,
    summarize,
)
from jobline_local.template import load_template

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def job(status: JobStatus, **fields: object) -> Job:
    values: dict[str, object] = {
        "id": f"{status.value}-job",
        "owner": "alice",
        "type": "echo",
        "status": status,
        "payload": {},
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Job.model_validate(values | fields)


def test_a_snapshot_survives_its_file(tmp_path: Path) -> None:
    # Given a snapshot with an item holding binary attributes and a message attribute
    snapshot = Snapshot(
        tables={
            "JobsTable": [
                {"id": {"S": "a"}, "blob": {"B": b"\x00\xff"}, "set": {"BS": [b"x"]}}
            ]
        },
        queues={
            "IngestQueue": [
                {
                    "MessageBody": "{}",
                    "MessageAttributes": {
                        "raw": {"DataType": "Binary", "BinaryValue": b"\x01"}
                    },
                }
            ]
        },
    )

    # When it is saved and loaded again
    path = tmp_path / "deep" / "state.json"
    save(snapshot, path)

    # Then it is the same snapshot, and no temporary file is left behind
    assert load(path) == snapshot
    assert [entry.name for entry in path.parent.iterdir()] == ["state.json"]


def test_no_file_is_no_snapshot(tmp_path: Path) -> None:
    assert load(tmp_path / "missing.json") is None


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"version": 99, "tables": {}, "queues": {}}']
)
def test_a_file_that_is_not_a_snapshot_of_this_format_is_refused(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateError, match=str(path)):
        load(path)


def test_the_queues_kept_are_those_no_table_recreates() -> None:
    # Given the template, whose jobs queues (one per lane) the outbox fills from the table and
    # whose outbox failure queues name positions in the table's stream
    # Then only the others are kept, each source before its dead-letter queue
    kept = kept_queues(load_template(), "JobsQueue")
    assert sorted(kept) == [
        "IngestDeadLetterQueue",
        "IngestQueue",
        "JobsDeadLetterQueue",
        "LongJobsDeadLetterQueue",
    ]
    assert kept.index("IngestQueue") < kept.index("IngestDeadLetterQueue")


def test_only_the_jobs_running_at_the_stop_get_their_message_again() -> None:
    # Given the items of jobs in every status, one running with a correlation id
    items = [
        job_to_item(job(status))
        for status in JobStatus
        if status is not JobStatus.RUNNING
    ]
    running = job(
        JobStatus.RUNNING,
        attempts=1,
        correlation_id="corr-1",
        lease_until=NOW + timedelta(minutes=1),
    )
    items.append(job_to_item(running))

    # Then the running one is the only one whose message is sent again (a queued job's comes
    # from the outbox when its restored item is streamed)
    assert reclaim_messages(items) == [
        JobMessage(
            job_id=running.id,
            owner="alice",
            job_type="echo",
            correlation_id="corr-1",
            run=1,
        )
    ]


def test_a_summary_counts_jobs_by_status_and_every_kept_message() -> None:
    snapshot = Snapshot(
        tables={
            "JobsTable": [
                job_to_item(job(JobStatus.QUEUED)),
                job_to_item(job(JobStatus.RUNNING, attempts=1)),
                job_to_item(job(JobStatus.SUCCEEDED)),
            ]
        },
        queues={"IngestQueue": [{"MessageBody": "{}"}], "JobsDeadLetterQueue": []},
    )
    summary = summarize(snapshot, "JobsTable")
    assert summary.jobs == {"queued": 1, "running": 1, "succeeded": 1}
    assert (summary.job_count, summary.unfinished, summary.messages) == (3, 2, 1)
    assert (
        summary.describe() == "3 jobs (1 queued, 1 running, 1 succeeded) and 1 message"
    )


def test_the_banner_and_the_stop_say_what_happens_to_the_state() -> None:
    path = Path("/somewhere/state.json")
    restored = StateSummary(jobs={"queued": 2}, messages=0)

    # At the start: restored, nothing saved, started clean, or not kept at all
    assert state_line(path, restored, fresh=False) == (
        "restored 2 jobs (2 queued) and 0 messages from /somewhere/state.json; "
        "saved there again at a clean stop"
    )
    assert "nothing saved; saved to /somewhere/state.json at a clean stop" in (
        state_line(path, None, fresh=False)
    )
    assert state_line(path, None, fresh=True).startswith("started clean (FRESH=1)")
    assert "dropped at the stop" in state_line(None, None, fresh=False)
    banner = render_banner(
        "http://127.0.0.1:8000",
        "http://127.0.0.1:5055",
        {},
        state=state_line(None, None, fresh=False),
        concurrency=4,
    )
    assert "State      in memory only" in banner
    assert "up to 4 invocations at once per queue" in banner

    # At the stop: saved and how to start clean, dropped and how much, or not saved
    kept = StateSummary(jobs={"queued": 1, "succeeded": 4}, messages=1)
    assert stop_line(path, kept) == (
        "State saved to /somewhere/state.json: 5 jobs (1 queued, 4 succeeded) and "
        "1 message. The next `make run` restores it: queued jobs run, running ones are "
        "taken over once their lease ends; `make run FRESH=1` starts clean.\n"
    )
    assert stop_line(None, kept) == (
        "State not kept (JOBLINE_LOCAL_STATE_FILE is empty): 5 jobs dropped, "
        "1 of them queued or running.\n"
    )
    assert "could not be saved" in stop_line(path, None)


@pytest.mark.parametrize(
    ("moto_host", "bind", "client"),
    [
        (None, "127.0.0.1", "127.0.0.1"),
        ("", "127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "0.0.0.0", "127.0.0.1"),
        ("::", "::", "::1"),
        ("172.17.0.1", "172.17.0.1", "172.17.0.1"),
    ],
)
def test_moto_listens_on_its_own_host_and_is_reached_on_loopback_when_that_is_every_interface(
    moto_host: str | None, bind: str, client: str
) -> None:
    settings = LocalSettings(host="127.0.0.1", moto_host=moto_host)
    assert (settings.moto_bind_host, settings.moto_client_host) == (bind, client)


def test_an_empty_state_file_setting_keeps_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBLINE_LOCAL_STATE_FILE", "")
    assert LocalSettings().state_file is None
    monkeypatch.setenv("JOBLINE_LOCAL_STATE_FILE", "/tmp/x.json")
    assert LocalSettings().state_file == Path("/tmp/x.json")
