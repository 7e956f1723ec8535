"""Write Jobline's OpenAPI document (`make openapi`): the app as deployed (no development identity)
with the example job types (`jobline_examples`), whatever else this checkout discovers. A test
fails when docs/openapi.json is stale.

The committed document describes Jobline's API, so a team's own types never make it stale: a
deployment's own document, its types included, is the live `GET /openapi.json` (`make run`, or
the deployed API).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import jobline_examples
from jobline.registry import JobTypeRegistry
from jobline_api.app import create_app
from jobline_api.openapi import build_openapi


def published_registry() -> JobTypeRegistry:
    """The job types docs/openapi.json shows: the examples."""
    return JobTypeRegistry(jobline_examples.JOB_TYPES)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tools.openapi PATH`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m tools.openapi PATH\n")
        return 2
    app = create_app(allow_dev_identity=False)
    document = build_openapi(app, published_registry(), dev_identity=False)
    Path(args[0]).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
