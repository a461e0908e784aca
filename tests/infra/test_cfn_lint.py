"""cfn-lint on every variant's template: no errors (W3005 comes from CDK itself)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import VARIANTS


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cfn_lint_finds_no_error(synthesize, variant):
    template = next(synthesize(variant).outdir.glob("*.template.json"))
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "parseable", "--ignore-checks", "W3005", "--", str(template)],
        capture_output=True,
        text=True,
    )
    errors = [line for line in result.stdout.splitlines() if ":E" in line]
    assert errors == [], result.stdout
