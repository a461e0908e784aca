"""The local run's report reads what the retrain left in its output folder by the trainer's own
file names, without loading the trainer's PyTorch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from training.output_files import DEBUGGER_REPORT, REPORT_FILES

ROOT = Path(__file__).resolve().parents[2]


def test_the_report_copies_the_trainers_files_and_reads_its_rules_without_importing_torch(tmp_path: Path):
    output = tmp_path / "output-data"
    output.mkdir()
    for name in REPORT_FILES:
        (output / name).write_text(name)
    (output / DEBUGGER_REPORT).write_text(json.dumps({"rules": [{"rule": "Overfit", "status": "NoIssuesFound"}]}))
    folder = tmp_path / "report"
    folder.mkdir()
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from imgclf.local import report\n"
        f"copied = report.copy_profiler(Path({str(folder)!r}), Path({str(output)!r}))\n"
        f"rules = report.write_rules(Path({str(folder)!r}), Path({str(output)!r}))\n"
        "print(json.dumps({'copied': copied, 'rules': [r['rule'] for r in rules],"
        " 'torch': 'torch' in sys.modules}))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found == {"copied": list(REPORT_FILES), "rules": ["Overfit"], "torch": False}
    assert sorted(p.name for p in (folder / "profiler").iterdir()) == sorted(REPORT_FILES)


def _retrain_with_optimized(**metrics: float):
    from imgclf.local.jobs import JobResult
    from infra.hyperparameters import encode

    hyperparameters = encode({"optimize": "int8", "max-optimized-accuracy-drop": 0.005, "min-optimized-agreement": 0.98})
    return JobResult("retrain", "Completed", hyperparameters, {k: [v] for k, v in {"test_acc": 0.93, **metrics}.items()}, 0.0, 1.0)


def test_the_summary_shows_the_optimized_forwards_accuracy_and_agreement_and_that_it_serves():
    from imgclf.local.report import optimized_summary

    final = _retrain_with_optimized(optimized_test_acc=0.925, optimized_acc_drop=0.005, optimized_agreement=0.9875,
                                    optimized_kept=1)
    assert optimized_summary(final) == [
        "- int8 forward: test_acc 0.9250 (-0.50 points vs fp32 on the CPU), top-1 agreement with fp32 0.9875",
        "- served forward: int8"]


def test_the_summary_says_fp32_serves_and_why_when_the_optimized_forward_fell_back():
    from imgclf.local.report import optimized_summary

    final = _retrain_with_optimized(optimized_test_acc=0.9, optimized_acc_drop=0.03, optimized_agreement=0.95,
                                    optimized_kept=0)
    assert optimized_summary(final)[1] == (
        "- served forward: fp32, because the int8 forward loses 0.03 of test top-1 to fp32, more than the allowed 0.005")
    unmeasured = _retrain_with_optimized(optimized_kept=0)
    assert optimized_summary(unmeasured) == [
        "- served forward: fp32, because it could not be produced or measured (the retrain's log says why)"]


def test_the_summary_has_no_optimized_lines_without_an_optimized_forward():
    from imgclf.local.jobs import JobResult
    from imgclf.local.report import optimized_summary

    assert optimized_summary(JobResult("retrain", "Completed", {}, {"test_acc": [0.93]}, 0.0, 1.0)) == []
