"""Find one of a caller's jobs by id: the rule every use case that starts from an id shares."""

from __future__ import annotations

import re
from datetime import datetime

from jobline.errors import JobNotFound
from jobline.models import Job, is_visible
from jobline.ports import JobRepository

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
"""What every job id looks like; anything else is unknown without a read."""


def find_job(repository: JobRepository, owner: str, job_id: str, now: datetime) -> Job:
    """The caller's job; unknown, malformed, foreign and expired ids are all `JobNotFound`."""
    if not JOB_ID.match(job_id):
        raise JobNotFound(job_id)
    job = repository.get(job_id)
    if job is None or not is_visible(job, owner, now):
        raise JobNotFound(job_id)
    return job
