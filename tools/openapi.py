"""Write the deployed API's OpenAPI document (`make openapi`): the app as deployed (no development
identity) and the deployment's job types. A test fails when docs/openapi.json is stale."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from jobline_api.app import create_app
from jobline_api.openapi import build_openapi, default_registry


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tools.openapi PATH`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m tools.openapi PATH\n")
        return 2
    app = create_app(allow_dev_identity=False)
    document = build_openapi(app, default_registry(), dev_identity=False)
    Path(args[0]).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
