"""The trainer's only door to debugging and profiling, so train.py does not change when the hook,
the rules or the profiler do.

Modes (config `debugger.mode`):
- portable: our smdebug hook (or SageMaker's, when the job has a debughookconfig.json) saves
  tensors to `trial_dir`; after training the five rules run in-process, their verdicts go to
  `debugger-report.json` and to `rule_<Name>=0|1` metric lines. The trainer keeps the trial in its
  checkpoint dir (`TRIAL_DIR`), the one folder a spot restart restores, and a resumed run writes
  on into it: the rules judge the whole run, not the part after the last restart.
- managed: the same hook, but SageMaker's rule jobs judge the trial; no rule lines are printed.
- off: nothing is recorded.
Both recording modes profile a window of training steps with torch.profiler and write a
one-page report (`training-report.md`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from torch import nn

from training.debugger_collections import DEFAULT_SAVE_INTERVAL
from training.metrics import format_metric_line, rule_metric_name
from training.output_files import DEBUGGER_REPORT

MODES = ("portable", "managed", "off")
#: The trial's folder inside the checkpoint dir.
TRIAL_DIR = "debug-tensors"


class Instrumentation:
    def __init__(self, mode: str, output_dir: Path, *, trial_dir: Path,
                 save_interval: int = DEFAULT_SAVE_INTERVAL, profile_steps: int = 10,
                 rule_params: dict | None = None) -> None:
        """Reports go to `output_dir`, our hook's tensors to `trial_dir`. Raises ValueError on a bad
        mode, interval or rule parameter, before any training."""
        if mode not in MODES:
            raise ValueError(f"debugger mode must be one of {MODES}, got {mode!r}")
        if save_interval < 1:
            raise ValueError(f"save interval must be >= 1, got {save_interval}")
        if profile_steps < 0:
            raise ValueError(f"profile steps must be >= 0, got {profile_steps}")
        self.mode = mode
        self.output_dir = Path(output_dir)
        self.own_trial_dir = Path(trial_dir)
        self.save_interval = save_interval
        self.profile_steps = profile_steps
        self.rule_params = rule_params or {}
        if mode == "portable":
            from training.rules import validate_rule_params

            validate_rule_params(self.rule_params)
        self.hook = None
        self.profiler = None
        self._profile: dict | None = None
        self._attached: tuple[nn.Module, nn.Module] | None = None
        #: Where the hook writes tensors: `own_trial_dir`, or a managed config's (None until attached,
        #: or when off).
        self.trial_dir: Path | None = None

    def attach(self, model: nn.Module, loss_fn: nn.Module, resume: bool = False) -> None:
        """Register the model and the nn.CrossEntropyLoss module with the smdebug hook, and start
        the profiler. `resume` (the run continues from a checkpoint) keeps the trial and continues
        its steps; otherwise an old trial in `trial_dir` is deleted."""
        if self.mode == "off":
            return
        from training.smdebug_runtime import ensure_smdebug

        ensure_smdebug()
        from training import debug_hook
        from training.profiling import StepProfiler

        self.hook = debug_hook.create_hook(self.own_trial_dir, self.save_interval, self.rule_params, resume)
        debug_hook.register(self.hook, model, loss_fn)
        self._attached = (model, loss_fn)
        self.trial_dir = Path(self.hook.out_dir)
        self.profiler = StepProfiler(self.output_dir, self.profile_steps)

    def set_mode(self, phase: Literal["train", "eval"]) -> None:
        """Switch the hook between TRAIN and EVAL steps."""
        if phase not in ("train", "eval"):
            raise ValueError(f"phase must be 'train' or 'eval', got {phase!r}")
        if self.hook is not None:
            import smdebug.pytorch as smd

            self.hook.set_mode(smd.modes.TRAIN if phase == "train" else smd.modes.EVAL)

    def record_step(self, data_seconds: float, compute_seconds: float) -> None:
        """Called after every training step: the step's tensors to disk, profiler step and timing
        bookkeeping."""
        if self.hook is not None:
            from training.debug_hook import flush

            flush(self.hook)
        if self.profiler is not None:
            self.profiler.step(data_seconds, compute_seconds)

    def stop_recording(self) -> None:
        """End of training: the hook is closed and detached, so that a test-split evaluation does
        not join the judged trial, and the profiler writes its summary."""
        if self.hook is None:
            return
        from training.debug_hook import detach

        self._profile = self.profiler.finish()
        self.hook.close()
        detach(self.hook, *self._attached)
        self.hook, self.profiler = None, None

    def finish(self, history: list[dict]) -> dict[str, int]:
        """After training: evaluate the rules, write the reports, print `rule_<Name>=0|1` lines
        (stopping the recording first if that has not happened yet).
        Returns {rule name: 1 if issues found else 0}, only for rules that reached a verdict
        ({} when rules are not evaluated here). A rule without a verdict prints no metric line,
        so a gate reading the metrics sees it missing, never passed."""
        self.stop_recording()
        if self.trial_dir is None:
            return {}
        profile = self._profile
        results = []
        if self.mode == "portable":
            from training.portable_rules import evaluate_rules

            results = [r.to_dict() for r in evaluate_rules(self.trial_dir, self.rule_params)]
            self._write_debugger_report(results)
            _print_verdicts(results)
        from training.training_report import write_report

        write_report(self.output_dir, history, results, profile, _step_losses(self.trial_dir))
        return {r["rule"]: r["verdict"] for r in results if r["verdict"] is not None}

    def _write_debugger_report(self, results: list[dict]) -> None:
        from training.debug_hook import hook_config_path

        config = hook_config_path()
        report = {
            "mode": self.mode,
            "trial": str(self.trial_dir),
            "hook_config": str(config) if config else None,
            "all_passed": all(r["status"] == "NoIssuesFound" for r in results),
            "rules": results,
        }
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / DEBUGGER_REPORT).write_text(json.dumps(report, indent=2, default=str))


def _print_verdicts(results: list[dict]) -> None:
    for r in results:
        if r["verdict"] is None:
            print(f"debugger: {r['rule']} has no verdict ({r['status']}): {r['evidence']}", flush=True)
        else:
            print(format_metric_line(**{rule_metric_name(r["rule"]): r["verdict"]}), flush=True)


def _step_losses(trial_dir: Path | None) -> dict[str, list[tuple[int, float]]]:
    """Per-mode (mode step, loss) pairs from the trial, for the report's per-step loss plot."""
    if trial_dir is None or not trial_dir.exists():
        return {}
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    trial = create_trial(str(trial_dir))
    if "losses" not in trial.collections():
        return {}
    names = trial.tensor_names(collection="losses")
    curves = {}
    for mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
        points = []
        for step in trial.steps(mode=mode):
            values = [float(trial.tensor(n).value(step, mode=mode)) for n in names
                      if step in trial.tensor(n).steps(mode=mode)]
            if values:
                points.append((step, sum(values) / len(values)))
        curves[mode.name] = points
    return curves
