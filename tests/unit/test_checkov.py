"""checkov's CloudFormation checks pass on template.yaml, except those the template skips (each
with its reason, tests/unit/test_template.py). checkov lives in a venv of its own (`make checkov`
installs it: it pins old boto3 and packaging releases); without it this test is skipped."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from jobline_local.template import REPO_ROOT, TEMPLATE_PATH


def checkov() -> str | None:
    tool_venv = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
    return str(tool_venv) if tool_venv.exists() else shutil.which("checkov")


def test_checkov_finds_nothing_the_template_does_not_skip() -> None:
    executable = checkov()
    if executable is None:
        pytest.skip(
            "checkov is not installed: `make checkov` installs it in .venv-checkov"
        )

    # When checkov checks the template (locally: --skip-download calls no vendor API)
    completed = subprocess.run(
        [
            executable,
            "--file",
            str(TEMPLATE_PATH),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(completed.stdout)

    # Then the template parsed, checks ran, and none failed (checkov exits 0 on a parse error)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, completed.stderr
    assert summary["passed"] > 0
    failed = [
        f"{check['check_id']} {check['resource']}"
        for check in report["results"]["failed_checks"]
    ]
    assert failed == []
    # And every skip is the template's own, with its reason
    skipped = report["results"]["skipped_checks"]
    assert skipped
    assert all(check["check_result"].get("suppress_comment") for check in skipped)
