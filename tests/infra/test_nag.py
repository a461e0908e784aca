"""cdk-nag (AwsSolutions) runs at every synth: a finding fails it. Here: no finding is left
unacknowledged, and every acknowledgement says why for its resource."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from stack_samples import VARIANTS


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


def _infra_imports() -> dict[str, set[str]]:
    """infra module -> the infra modules it imports (TYPE_CHECKING imports included)."""
    root = Path(__file__).resolve().parents[2]
    modules = {
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (root / "infra").rglob("*.py")
    }
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import module` needs the module; the package is already loading.
                submodules = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                found |= submodules if len(submodules) == len(node.names) else {node.module, *submodules}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_acknowledgements_sit_in_the_constructs_so_no_infra_import_runs_in_a_cycle():
    graph = _infra_imports()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name not in done:
            for child in graph[name]:
                visit(child, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())
