"""One-page training report: what a user looks at first after a run.

Markdown with PNG plots (matplotlib, Agg backend: no display in a training container): loss
curves for train and eval, step time with its data-wait/compute split, CPU/GPU utilisation, the
rule verdicts and the top operators. Built from plain data so that it can be tested without a training run.
"""
from __future__ import annotations

from pathlib import Path

from training.output_files import LOSS_PNG, REPORT_MD, STEP_PNG, UTILISATION_PNG


def write_report(output_dir: Path, history: list[dict], rules: list[dict], profile: dict | None,
                 step_losses: dict[str, list[tuple[int, float]]] | None = None) -> Path:
    """Write the report and its plots into `output_dir`; return the report's path.

    history: one dict per epoch (`epoch`, `train_loss`, `valid_loss`, ...);
    rules: `RuleResult.to_dict()`s; profile: the profiler summary (None when profiling was off);
    step_losses: per-mode (`TRAIN`/`EVAL`) lists of (mode step, loss) read from the trial.
    """
    import matplotlib

    matplotlib.use("Agg")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sections = ["# Training report", ""]
    if _plot_losses(output_dir / LOSS_PNG, history, step_losses or {}):
        sections += ["## Loss", "", f"![loss curves]({LOSS_PNG})", ""]
    sections += ["## Epochs", "", _history_table(history), ""]
    sections += ["## Debugger rules", "", _rules_table(rules), ""]
    if profile:
        from training.profiling import ops_table, utilisation_text

        _plot_step_times(output_dir / STEP_PNG, profile)
        sections += [
            "## Step time", "",
            f"{profile['steps']} training steps; data wait {profile['data_wait_pct']:.1f}% / "
            f"compute {profile['compute_pct']:.1f}%; mean step {profile['step_ms_mean']:.1f} ms; "
            f"peak memory ({profile['peak_memory']['kind']}) "
            f"{profile['peak_memory']['bytes'] / 2**20:.1f} MiB.", "",
            f"![step time]({STEP_PNG})", "",
            "## Utilisation", "", utilisation_text(profile["utilisation"]) + ".", "",
        ]
        if _plot_utilisation(output_dir / UTILISATION_PNG, profile["utilisation"]):
            sections += [f"![utilisation]({UTILISATION_PNG})", ""]
        sections += [
            f"## Top operators ({profile['profiled_steps']} profiled steps)", "",
            ops_table(profile["top_ops"]), "",
        ]
    path = output_dir / REPORT_MD
    path.write_text("\n".join(sections))
    return path


def _plot_losses(path: Path, history: list[dict], step_losses: dict) -> bool:
    import matplotlib.pyplot as plt

    epochs = [h for h in history if "epoch" in h]
    if not epochs and not any(step_losses.values()):
        return False
    panels = 2 if any(step_losses.values()) else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    ax = axes[0][0]
    for key, label in (("train_loss", "train"), ("valid_loss", "eval")):
        points = [(h["epoch"], h[key]) for h in epochs if key in h]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set(title="Loss per epoch", xlabel="epoch", ylabel="loss")
    _legend(ax)
    if panels == 2:
        ax = axes[0][1]
        for mode, points in step_losses.items():
            if points:
                ax.plot(*zip(*points, strict=True), label=mode.lower(), linewidth=1)
        ax.set(title="Saved loss per step (smdebug trial)", xlabel="mode step", ylabel="loss")
        _legend(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def _plot_step_times(path: Path, profile: dict) -> None:
    import matplotlib.pyplot as plt

    times = profile["step_times"]
    steps = range(len(times))
    fig, ax = plt.subplots(figsize=(8, 3))
    data = [1000 * d for d, _ in times]
    compute = [1000 * c for _, c in times]
    ax.bar(steps, data, width=1.0, label="data wait")
    ax.bar(steps, compute, width=1.0, bottom=data, label="compute")
    ax.set(title="Step time", xlabel="training step", ylabel="ms")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_utilisation(path: Path, utilisation: dict) -> bool:
    import matplotlib.pyplot as plt

    samples = utilisation["samples"]
    if not samples:
        return False
    steps = [r["step"] for r in samples]
    fig, ax = plt.subplots(figsize=(8, 3))
    for key, label in (("process_cpu_pct", f"trainer CPU (100% = 1 of {utilisation['cpu_count']} cores)"),
                       ("system_cpu_pct", "machine CPU"), ("gpu_pct", "GPU")):
        if key in samples[0]:
            ax.plot(steps, [r[key] for r in samples], marker=".", label=label)
    ax.set(title="Utilisation", xlabel="training step", ylabel="%")
    ax.legend(loc="upper left")
    if "gpu_memory_mib" in samples[0]:
        memory = ax.twinx()
        memory.plot(steps, [r["gpu_memory_mib"] for r in samples], color="grey", linestyle="--",
                    label="GPU memory allocated")
        memory.set(ylabel="MiB")
        memory.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _history_table(history: list[dict]) -> str:
    if not history:
        return "_No epochs recorded._"
    keys = [k for k in ("epoch", "train_loss", "train_acc", "valid_loss", "valid_acc") if k in history[0]]
    rows = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    rows += ["| " + " | ".join(_fmt(h.get(k)) for k in keys) + " |" for h in history]
    return "\n".join(rows)


def _rules_table(rules: list[dict]) -> str:
    if not rules:
        return "_Rules were not evaluated in this run (debugger mode is not portable)._"
    rows = ["| rule | status | step | evidence |", "| --- | --- | --- | --- |"]
    for r in rules:
        step = "" if r["step"] is None else f"{r['mode']} {r['mode_step']} (global {r['step']})"
        evidence = ", ".join(f"{k}={_fmt(v)}" for k, v in r["evidence"].items())
        rows.append(f"| [{r['rule']}]({r['doc']}) | {r['status']} | {step} | {evidence} |")
    return "\n".join(rows)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|")
