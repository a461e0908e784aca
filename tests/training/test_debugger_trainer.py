"""The debugger in the real trainer (training/train.py): a trial with TRAIN and EVAL losses, a
verdict from every rule, and a trial that survives a spot restart, which restores only the
checkpoint dir."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from debug_loop import relu_input_records
from smdebug.core.modes import ModeKeys
from smdebug.trials import create_trial
from test_faults_interruption import StopAfterSteps

from trainer_samples import FAST_FLAGS
from training import portable_rules
from training.instrumentation import TRIAL_DIR
from training.metrics import RULE_NAMES, metric_definitions, parse_metrics, rule_metric_name
from training.output_files import DEBUGGER_REPORT
from training.train import parse_args, run_job

#: 32 train and 32 valid images in batches of 4: 8 TRAIN and 8 EVAL steps per epoch, so 2 epochs
#: give LossNotDecreasing (num_steps 10) two EVAL losses far enough apart. Default save interval.
FLAGS = ("--debugger", "portable", "--epochs", "2", "--batch-size", "4", "--profile-steps", "2")
STEPS_PER_EPOCH = 8
LOSS_RULES = ("Overfit", "Overtraining", "LossNotDecreasing")


def _verdicts(job: Path) -> dict[str, int | None]:
    report = json.loads((job / "output" / "data" / DEBUGGER_REPORT).read_text())
    return {r["rule"]: r["verdict"] for r in report["rules"]}


def _loss_steps(job: Path, mode: ModeKeys) -> list[int]:
    trial = create_trial(str(job / "checkpoints" / TRIAL_DIR))
    return trial.tensor("CrossEntropyLoss_output_0").steps(mode=mode)


def test_a_trainer_run_records_train_and_eval_losses_and_every_rule_gives_a_verdict(
        small_splits: Path, tmp_path: Path, run_trainer):
    job = tmp_path / "job"
    result = run_trainer(small_splits, job, *FLAGS)
    assert result.returncode == 0, result.stderr
    assert _loss_steps(job, ModeKeys.TRAIN) == list(range(2 * STEPS_PER_EPOCH))
    assert _loss_steps(job, ModeKeys.EVAL) == list(range(2 * STEPS_PER_EPOCH))
    verdicts = _verdicts(job)
    assert set(verdicts) == set(RULE_NAMES) and None not in verdicts.values(), verdicts
    # ResNet-50's ReLU inputs as variances only: a few bytes each, not batch x activations
    relu = relu_input_records(job / "checkpoints" / TRIAL_DIR)
    assert {reduction for reduction, _ in relu} == {"variance"}
    assert max(length for _, length in relu) < 256
    found = parse_metrics(result.stdout, metric_definitions())
    assert {name: found[rule_metric_name(name)] for name in RULE_NAMES} == {
        name: [float(verdict)] for name, verdict in verdicts.items()}


def _args(splits: Path, job: Path):
    return parse_args(["--train", str(splits / "train"), "--valid", str(splits / "valid"),
                       "--model-dir", str(job / "model"), *FAST_FLAGS, *FLAGS])


def _spot_restart(job: Path) -> None:
    """What survives a spot restart: /opt/ml/checkpoints (synced to S3), not the output or model."""
    shutil.rmtree(job / "output")
    shutil.rmtree(job / "model")


def test_a_job_stopped_mid_epoch_keeps_its_trial_and_the_rerun_continues_its_steps(
        small_splits: Path, tmp_path: Path, capsys):
    job = tmp_path / "job"
    # polls: 8 steps of epoch 1, its end, then steps 1-3 of epoch 2: stopped after step 3
    assert run_job(_args(small_splits, job), StopAfterSteps(STEPS_PER_EPOCH + 1 + 2)) == 0
    assert "stopped by SIGTERM in epoch 2 after step 3" in capsys.readouterr().out
    _spot_restart(job)
    assert run_job(_args(small_splits, job), StopAfterSteps(10**6)) == 0
    assert _loss_steps(job, ModeKeys.TRAIN) == list(range(2 * STEPS_PER_EPOCH))
    assert _loss_steps(job, ModeKeys.EVAL) == list(range(2 * STEPS_PER_EPOCH))
    assert None not in _verdicts(job).values()


class Killed(Exception):
    """The job dying (spot reclaim, out of time) while the rules run after the last checkpoint."""


def test_a_job_killed_after_its_last_checkpoint_still_gets_verdicts_on_the_rerun(
        small_splits: Path, tmp_path: Path, monkeypatch):
    job = tmp_path / "job"
    with monkeypatch.context() as patch:
        patch.setattr(portable_rules, "evaluate_rules", lambda *a, **k: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            run_job(_args(small_splits, job), StopAfterSteps(10**6))
    _spot_restart(job)
    assert run_job(_args(small_splits, job), StopAfterSteps(10**6)) == 0  # trains no step
    verdicts = _verdicts(job)
    assert all(verdicts[rule] is not None for rule in LOSS_RULES), verdicts
    assert _loss_steps(job, ModeKeys.TRAIN) == list(range(2 * STEPS_PER_EPOCH))
