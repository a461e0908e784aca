"""cfn-lint on every variant's template: no errors (W3005 comes from CDK itself).

cfn-lint's exit status is a bit mask: 2 errors, 4 warnings, 8 informational; anything else
(1, or a crash) means the lint did not run as asked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stack_samples import VARIANTS


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cfn_lint_finds_no_error(synthesize, variant):
    template = next(synthesize(variant).outdir.glob("*.template.json"))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", "--ignore-checks", "W3005", "--", str(template)],
        capture_output=True,
        text=True,
    )
    assert result.returncode & ~(4 | 8) == 0, result.stdout + result.stderr
    assert result.stderr == ""
