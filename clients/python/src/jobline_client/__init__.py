"""Python client of the Jobline job service, and the `jobline` command line (`jobline_client.cli`).

```python
from jobline_client import Client

with Client("http://127.0.0.1:8000", dev_user="alice") as jobline:
    job = jobline.submit("echo", {"hello": "world"})
    done = jobline.wait(job.id, timeout=60)
```
"""

from jobline_client.client import DEFAULT_API_URL, AsyncClient, Client, __version__
from jobline_client.errors import (
    ApiError,
    Conflict,
    DataTransferFailed,
    InvalidRequest,
    InvalidResponse,
    JoblineClientError,
    JobNotFound,
    ServiceUnavailable,
    Unauthorized,
)
from jobline_client.models import (
    Attempt,
    DataLink,
    Job,
    JobError,
    JobPage,
    JobStatus,
    JobSummary,
    JobTypeInfo,
    Progress,
)
from jobline_client.pacing import WaitTimeout

__all__ = [
    "DEFAULT_API_URL",
    "ApiError",
    "AsyncClient",
    "Attempt",
    "Client",
    "Conflict",
    "DataLink",
    "DataTransferFailed",
    "InvalidRequest",
    "InvalidResponse",
    "Job",
    "JobError",
    "JobNotFound",
    "JobPage",
    "JobStatus",
    "JobSummary",
    "JobTypeInfo",
    "JoblineClientError",
    "Progress",
    "ServiceUnavailable",
    "Unauthorized",
    "WaitTimeout",
    "__version__",
]
