"""The local gate decides as the state machine's Gate states do, and a refusal deploys nothing."""
from __future__ import annotations

import pytest

import infra.source_bundle
from imgclf.errors import UserError
from imgclf.local.gate import gate_failure
from imgclf.local.pipeline import run_pipeline
from infra.config import load_config
from stub_trainer import write_bundle, write_splits
from training.metrics import RULE_NAMES, rule_metric_name

CLEAN = {**{rule_metric_name(r): 0.0 for r in RULE_NAMES}, "test_acc": 0.95}


def test_the_gate_passes_clean_rules_and_enough_accuracy():
    assert gate_failure(load_config(), "portable", CLEAN) is None


def test_a_fired_rule_fails_the_gate_with_the_rule_name():
    assert gate_failure(load_config(), "portable", {**CLEAN, "rule_Overfit": 1.0}) == "rule Overfit found issues"


def test_a_rule_that_was_never_reported_is_no_verdict_not_a_pass():
    metrics = {k: v for k, v in CLEAN.items() if k != "rule_LossNotDecreasing"}
    assert gate_failure(load_config(), "portable", metrics).startswith("rule_LossNotDecreasing was not reported")


def test_accuracy_below_the_threshold_fails_the_gate_with_both_numbers():
    cfg = load_config({"gate": {"min_test_accuracy": 0.9}})
    assert gate_failure(cfg, "portable", {**CLEAN, "test_acc": 0.5}) == "test_acc 0.5 < 0.9"


def test_rules_do_not_block_when_the_config_says_so_or_the_debugger_is_off():
    fired = {**CLEAN, "rule_Overfit": 1.0}
    assert gate_failure(load_config({"gate": {"block_on_rules": False}}), "portable", fired) is None
    assert gate_failure(load_config(), "off", {"test_acc": 0.95}) is None


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
