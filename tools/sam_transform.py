"""The SAM transform (samtranslator: the code CloudFormation runs for `Transform:
AWS::Serverless-2016-10-31`) as a filter: a JSON object `{"template": ..., "parameters": ...}` on
standard input, the expanded CloudFormation template as JSON on standard output.

It runs in `.venv-sam-translator` (`make .venv-sam-translator/.installed`, which `make test` does):
aws-sam-translator pins pydantic below the version the layer ships, so it stays out of the
development virtualenv. tests/unit/test_transformed_template.py calls it:

    .venv-sam-translator/bin/python -I tools/sam_transform.py < input.json > expanded.json

No AWS call: AWS managed policy names would be looked up in IAM only for names a function lists
in `Policies`, and the template lists none (`NoManagedPolicies` answers for IAM).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from samtranslator.public.translator import (  # type: ignore[import-not-found]
    ManagedPolicyLoader,
)
from samtranslator.translator.transform import (  # type: ignore[import-not-found]
    transform,
)


class NoManagedPolicies(ManagedPolicyLoader):  # type: ignore[misc]
    """SAM maps AWS managed policy names to ARNs (through IAM) only for names listed in a
    function's `Policies`; the template lists none, so no lookup happens."""

    def __init__(self) -> None:  # no IAM client
        pass

    def load(self) -> dict[str, str]:
        return {}


def main() -> None:
    given: dict[str, Any] = json.load(sys.stdin)
    expanded = transform(given["template"], given["parameters"], NoManagedPolicies())
    json.dump(expanded, sys.stdout)


if __name__ == "__main__":
    main()
