"""Issue 12, defect 12: new accounts often have a quota of 0 for the default spot training
instance, so the README's deploy steps and troubleshooting table name the exact quotas a first run
asks for, as the machine's Fail cause names them (infra/state_machine/quotas.py)."""
from __future__ import annotations

import re

import pytest
from stack_samples import ROOT

from infra.config import load_config
from infra.state_machine.quotas import tuning_quota


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("spot", [True, False])
def test_the_readme_names_the_training_quota_of_the_default_instance_in_the_deploy_steps_and_troubleshooting(spot):
    cfg = load_config({"training": {"spot": spot}})
    (quota,) = re.findall(r'"([^"]+ training job usage)"', tuning_quota(cfg))
    readme = (ROOT / "README.md").read_text()
    for heading in ("Deploy to AWS", "Troubleshooting"):
        assert f"`{quota}`" in _section(readme, heading), (heading, quota)
    deploy = _section(readme, "Deploy to AWS")
    assert "quota of **0**" in deploy and f"({cfg.tuning.max_parallel_jobs};" in deploy
