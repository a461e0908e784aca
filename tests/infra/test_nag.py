"""cdk-nag (AwsSolutions) runs at every synth: a finding fails it. Here: no finding is left
unacknowledged, and every acknowledgement says why for its resource."""
from __future__ import annotations

import json

import pytest
from conftest import VARIANTS


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cdk_nag_reports_no_unacknowledged_finding(synthesize, variant):
    report = json.loads((synthesize(variant).outdir / "validation-report.json").read_text())
    assert report["pluginReports"] == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_acknowledgement_carries_a_specific_reason(synthesize, variant):
    metadata = json.loads(next(synthesize(variant).outdir.glob("*.metadata.json")).read_text())
    acks = {
        (path, rule): reason
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule, reason in entry["data"].items()
    }
    assert acks
    assert all(len(reason) > 40 for reason in acks.values())
    # No blanket reason: a reason text serves one rule only.
    rules_by_reason: dict[str, set[str]] = {}
    for (_, rule), reason in acks.items():
        rules_by_reason.setdefault(reason, set()).add(rule)
    assert all(len(rules) == 1 for rules in rules_by_reason.values())
