"""A refusal of the local gate deploys nothing. What the gate decides, for cloud and local alike, is
tests/infra/test_gate_checks.py's table."""
from __future__ import annotations

import pytest

import infra.source_bundle
from imgclf.errors import UserError
from imgclf.local.pipeline import run_pipeline
from infra.config import load_config
from stub_trainer import write_bundle, write_splits
from training.metrics import RULE_NAMES


def test_a_failing_gate_stops_the_pipeline_before_packaging_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(infra.source_bundle, "build_source_bundle", lambda out: write_bundle(out))
    monkeypatch.setenv("STUB_RULES", ",".join(f"{r}={int(r == 'Overtraining')}" for r in RULE_NAMES))
    cfg = load_config({"training": {"epochs": 1}, "tuning": {"max_jobs": 1, "max_parallel_jobs": 1, "batch_sizes": [16]}})
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(UserError, match="gate failed: rule Overtraining found issues; nothing deployed"):
        run_pipeline(cfg, out, write_splits(tmp_path / "data"), progress=lambda line: None)
    assert "rule Overtraining found issues" in (out / "report" / "summary.md").read_text()
    assert not list(out.rglob("model.tar.gz")) and not (out / "endpoint").exists()


def test_rules_that_found_issues_are_listed_even_when_they_do_not_block():
    from imgclf.local.gate import rules_with_issues

    found = {"rule_Overfit": 1.0, "rule_VanishingGradient": 0.0, "test_acc": 0.9}
    assert rules_with_issues(found) == ["Overfit"]
