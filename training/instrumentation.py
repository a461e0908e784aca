"""PLACEHOLDER INTERFACE (to be replaced by the debugging/profiling work, issue 3).

The trainer talks to debugging and profiling only through this class, so train.py does not
change when the hook, rules or profiler do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import nn


class Instrumentation:
    def __init__(self, mode: str, output_dir: Path, save_interval: int = 10, profile_steps: int = 10,
                 rule_params: dict | None = None) -> None:
        self.mode = mode
        self.output_dir = Path(output_dir)

    def attach(self, model: nn.Module, loss_fn: nn.Module) -> None:
        """Register the model and the nn.CrossEntropyLoss module with the smdebug hook."""

    def set_mode(self, phase: Literal["train", "eval"]) -> None:
        """Switch the hook (and the profiler) between TRAIN and EVAL steps."""

    def record_step(self, data_seconds: float, compute_seconds: float) -> None:
        """Called after every training step: profiler step and timing bookkeeping."""

    def finish(self, history: list[dict]) -> dict[str, int]:
        """After training: evaluate the rules, write the reports, print `rule_<Name>=0|1` lines.
        Returns {rule name: 1 if issues found else 0} ({} when rules are not evaluated here)."""
        return {}
