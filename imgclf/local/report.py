"""The run's report folder: what a user opens after `imgclf local run`.

Everything is read back from what the jobs left on disk (trial metrics parsed with the request's
regexes, the final job's output/data), so the report agrees with the logs. Files:
  trials.csv, trials.md      one row per trial: tuned values, objective, epochs, duration, status
  best-hyperparameters.json  the tuned values of the best trial and the merged set the retrain ran
  loss-curves.png            objective per epoch for every trial, and the retrain's train/valid loss
  rules.json, rules.md       the retrain's rule verdicts (from its debugger-report.json)
  profiler/                  the retrain's profiler summary and training report, copied as written
  confusion-matrix.png       the served model on the test split, through the real handlers
  gallery/<class>.png        per class, test images right and wrong with their Grad-CAM heatmaps
                             (gallery.py), and summary.md's most-confused pairs
  summary.md                 all of the above on one page, with test accuracy and the gate verdict
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from imgclf.local import gallery
from imgclf.local.jobs import JobResult
from imgclf.local.tuner import TuningResult
from training.output_files import DEBUGGER_REPORT, REPORT_FILES


def trial_rows(tuning: TuningResult) -> list[dict]:
    rows = []
    for t in tuning.trials:
        r = t.result
        objective = r.final_metric(tuning.objective) if r else None
        rows.append(
            {
                "trial": t.name,
                **t.tuned,
                tuning.objective: "" if objective is None else f"{objective:.6f}",
                "epochs": len(r.metrics.get(tuning.objective, [])) if r else 0,
                "duration_s": f"{r.duration:.1f}" if r else "",
                "status": r.status if r else "InProgress",
                "detail": _detail(r),
                "best": "yes" if t is tuning.best else "",
            }
        )
    return rows


def _detail(r: JobResult | None) -> str:
    if r is None:
        return ""
    if r.status == "Failed":
        return r.error_line()
    return "" if r.secondary_status == r.status else r.secondary_status


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]).replace("|", "\\|") for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_trials(folder: Path, tuning: TuningResult) -> list[dict]:
    rows = trial_rows(tuning)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    (folder / "trials.csv").write_text(buffer.getvalue())
    (folder / "trials.md").write_text(_markdown_table(rows))
    return rows


def plot_losses(path: Path, tuning: TuningResult, final: JobResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for t in tuning.trials:
        values = t.result.metrics.get(tuning.objective, []) if t.result else []
        if values:
            style = "-" if t is tuning.best else "--"
            left.plot(range(1, len(values) + 1), values, style, marker="o", label=f"{t.name} ({t.result.status})")
    left.set(title=f"trials: {tuning.objective} per epoch", xlabel="epoch", ylabel=tuning.objective)
    left.legend(fontsize=7)
    for name in ("train_loss", "valid_loss"):
        values = final.metrics.get(name, [])
        if values:
            right.plot(range(1, len(values) + 1), values, marker="o", label=name)
    right.set(title=f"retrain {final.name}", xlabel="epoch", ylabel="loss")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_rules(folder: Path, output_data_dir: Path) -> list[dict]:
    """The retrain's rule verdicts; [] when the debugger was off."""
    source = output_data_dir / DEBUGGER_REPORT
    if not source.exists():
        return []
    rules = json.loads(source.read_text()).get("rules", [])
    (folder / "rules.json").write_text(json.dumps(rules, indent=2, default=str) + "\n")
    rows = [{"rule": r["rule"], "status": r["status"], "step": r.get("step"), "evidence": json.dumps(r.get("evidence", {}), default=str)} for r in rules]
    (folder / "rules.md").write_text(_markdown_table(rows))
    return rules


def copy_profiler(folder: Path, output_data_dir: Path) -> list[str]:
    """The trainer's profiler summary and one-page report, by the names the trainer writes them under."""
    target = folder / "profiler"
    copied = []
    for name in REPORT_FILES:
        if (output_data_dir / name).exists():
            target.mkdir(exist_ok=True)
            shutil.copy2(output_data_dir / name, target / name)
            copied.append(name)
    return copied


def plot_confusion(path: Path, classes: list[str], matrix: list[list[int]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    size = max(4, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title="test split, served model")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            ax.text(j, i, str(n), ha="center", va="center", color="black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def optimized_summary(final: JobResult) -> list[str]:
    """The optimized forward's comparison with fp32 (training/optimize.py), when the retrain made
    one, and whether it ships or the endpoint serves fp32, and why (training/optimized_checks.py)."""
    from infra.hyperparameters import decoded
    from training import optimized_checks

    kept = final.final_metric(optimized_checks.KEPT_METRIC)
    if kept is None:
        return []
    hyperparameters = decoded(final.hyperparameters)
    forward = hyperparameters.get("optimize", "the optimized")
    found = {name: final.final_metric(name) for name in ("optimized_test_acc", "optimized_acc_drop", "optimized_agreement")}
    lines = []
    if None not in found.values():
        lines.append(f"- {forward} forward: test_acc {found['optimized_test_acc']:.4f} "
                     f"({-found['optimized_acc_drop'] * 100:+.2f} points vs fp32 on the CPU), "
                     f"top-1 agreement with fp32 {found['optimized_agreement']:.4f}")
    if kept:
        return [*lines, f"- served forward: {forward}"]
    limits = {"max_drop": float(hyperparameters.get("max-optimized-accuracy-drop", optimized_checks.DEFAULT_MAX_DROP)),
              "min_agreement": float(hyperparameters.get("min-optimized-agreement", optimized_checks.DEFAULT_MIN_AGREEMENT))}
    reason = (optimized_checks.refusal(forward, found, limits) if None not in found.values()
              else "it could not be produced or measured (the retrain's log says why)")
    return [*lines, f"- served forward: fp32, because {reason}"]


def write_report(folder: Path, tuning: TuningResult, final: JobResult, final_output: Path,
                 merged_hyperparameters: dict[str, str], gate: str | None, service=None,
                 test_dir: Path | None = None) -> None:
    """Write every report file; summary.md puts the headline figures on one page."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = write_trials(folder, tuning)
    (folder / "best-hyperparameters.json").write_text(
        json.dumps({"best_trial": tuning.best.name, "tuned": tuning.best.tuned, "retrain": merged_hyperparameters}, indent=2) + "\n"
    )
    plot_losses(folder / "loss-curves.png", tuning, final)
    rules = write_rules(folder, final_output)
    profiler = copy_profiler(folder, final_output)
    served = ""
    if service is not None and test_dir is not None:
        classes, answers = gallery.explain_test_split(service, test_dir)
        matrix = gallery.confusion(classes, answers)
        plot_confusion(folder / "confusion-matrix.png", classes, matrix)
        # The local registry's evidence reads it (imgclf/local/registry.py).
        (folder / "confusion-matrix.json").write_text(json.dumps({"classes": classes, "matrix": matrix}) + "\n")
        correct = sum(matrix[i][i] for i in range(len(classes)))
        seen = sum(map(sum, matrix))
        served = (f"- served model on the test split: {correct}/{seen} correct\n\n![confusion matrix](confusion-matrix.png)\n\n"
                  f"{gallery.write_gallery(folder, classes, answers)}\n")
    summary = [
        "# imgclf local run", "",
        f"- tuning objective: {tuning.objective} ({tuning.direction}); best trial {tuning.best.name}: "
        f"{tuning.best.result.final_metric(tuning.objective):.4f}",
        f"- retrain {final.name}: {final.status}, test_acc {final.final_metric('test_acc')}",
        *optimized_summary(final),
        f"- gate: {gate or 'passed'}", served, "## Trials", "", _markdown_table(rows),
        "![loss curves](loss-curves.png)", "", "## Debugger rules", "",
        (folder / "rules.md").read_text() if rules else "(debugger off)\n",
        "## Profiler", "", ", ".join(f"[{n}](profiler/{n})" for n in profiler) or "(no profiler output)", "",
    ]
    (folder / "summary.md").write_text("\n".join(summary))
