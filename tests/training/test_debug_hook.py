"""The smdebug hook on current torch: our own without a SageMaker config, SageMaker's with one."""
from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from smdebug.core.modes import ModeKeys
from smdebug.trials import create_trial
from torch import nn

from training import debug_hook
from training.debugger_collections import collection_configurations
from training.instrumentation import Instrumentation


@pytest.fixture(autouse=True)
def no_managed_config(monkeypatch, tmp_path):
    monkeypatch.setenv(debug_hook.HOOK_CONFIG_ENV, str(tmp_path / "absent.json"))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(fc=nn.Linear(6, 8), relu=nn.ReLU(inplace=True), head=nn.Linear(8, 3)))


def _one_step(hook, model, loss_fn=None):
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    debug_hook.register(hook, model, loss_fn)
    hook.set_mode(ModeKeys.TRAIN)
    loss_fn(model(torch.randn(16, 6)), torch.randint(0, 3, (16,))).backward()
    hook.close()
    return create_trial(hook.out_dir)


def test_without_a_sagemaker_config_the_hook_is_ours_and_saves_every_collection(tmp_path):
    assert debug_hook.hook_config_path() is None
    hook = debug_hook.create_hook(tmp_path / "tensors", save_interval=5)
    trial = _one_step(hook, _model())
    assert hook.out_dir == str(tmp_path / "tensors")
    assert trial.tensor_names(collection="losses") == ["CrossEntropyLoss_output_0"]
    assert trial.tensor_names(collection="relu_input") == ["relu_input_0"]
    assert "gradient/Sequential_fc.weight" in trial.tensor_names(collection="gradients")
    assert "Sequential_fc.weight" in trial.tensor_names(collection="weights")


def test_with_a_sagemaker_config_the_hook_follows_it(tmp_path, monkeypatch):
    config = tmp_path / "debughookconfig.json"
    config.write_text(json.dumps({
        "LocalPath": str(tmp_path / "managed"),
        "HookParameters": {"save_interval": "3"},
        "CollectionConfigurations": collection_configurations(3, managed=True),
    }))
    monkeypatch.setenv(debug_hook.HOOK_CONFIG_ENV, str(config))
    hook = debug_hook.create_hook(tmp_path / "ignored", save_interval=99)
    trial = _one_step(hook, _model())
    assert hook.out_dir == str(tmp_path / "managed")
    assert not (tmp_path / "ignored").exists()
    assert trial.tensor_names(collection="relu_input") == ["relu_input_0"]


def test_relu_input_holds_the_values_before_the_in_place_relu(tmp_path, monkeypatch):
    config = tmp_path / "debughookconfig.json"  # a managed config: raw ReLU inputs (portable saves variances)
    config.write_text(json.dumps({"LocalPath": str(tmp_path / "t"),
                                  "CollectionConfigurations": collection_configurations(1, managed=True)}))
    monkeypatch.setenv(debug_hook.HOOK_CONFIG_ENV, str(config))
    trial = _one_step(debug_hook.create_hook(tmp_path / "ignored", save_interval=1), _model())
    saved = np.asarray(trial.tensor("relu_input_0").value(0))
    assert (saved < 0).any()


def test_a_functional_loss_is_refused_with_a_clear_message(tmp_path):
    hook = debug_hook.create_hook(tmp_path / "t", save_interval=1)
    with pytest.raises(TypeError, match="needs a loss module such as nn.CrossEntropyLoss"):
        debug_hook.register(hook, _model(), nn.functional.cross_entropy)


def _instrumented_step(out, resume: bool) -> None:
    instr = Instrumentation("portable", out, trial_dir=out / "tensors", save_interval=1, profile_steps=0)
    model, loss_fn = _model(), nn.CrossEntropyLoss()
    instr.attach(model, loss_fn, resume=resume)
    instr.set_mode("train")
    loss_fn(model(torch.randn(4, 6)), torch.randint(0, 3, (4,))).backward()
    instr.record_step(0.0, 0.01)
    instr.finish([])


def test_a_fresh_run_into_the_same_trial_dir_starts_a_fresh_trial(tmp_path):
    for _ in range(2):
        _instrumented_step(tmp_path, resume=False)
    assert create_trial(str(tmp_path / "tensors")).steps() == [0]


def test_a_resumed_run_continues_the_trial_and_its_step_numbers(tmp_path):
    for resume in (False, True, True):
        _instrumented_step(tmp_path, resume=resume)
    trial = create_trial(str(tmp_path / "tensors"))
    assert trial.steps() == [0, 1, 2]
    assert trial.steps(mode=ModeKeys.TRAIN) == [0, 1, 2]


def test_smdebugs_checkpoint_watch_stays_off_for_our_hook_in_a_job_with_checkpoints(tmp_path, monkeypatch):
    # SageMaker writes checkpointconfig.json for a job with a CheckpointConfig; our trial lives in
    # that checkpoint dir. smdebug would walk it and rewrite metadata.json after every step, and
    # start a fresh run at the step numbers it finds there.
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "metadata.json").write_text(json.dumps([{  # an earlier run's state, as smdebug writes it
        "training_run": 0, "latest_global_step_saved": 40, "latest_global_step_seen": 41,
        "latest_mode_step": {"TRAIN": 41}}]))
    (checkpoints / "checkpoint-0001.pth").write_bytes(b"weights")
    config = tmp_path / "checkpointconfig.json"
    config.write_text(json.dumps({"LocalPath": str(checkpoints)}))
    monkeypatch.setenv("CHECKPOINT_CONFIG_FILE_PATH", str(config))
    stamp = (checkpoints / "metadata.json").stat().st_mtime_ns
    for resume in (False, True):
        _instrumented_step(checkpoints, resume=resume)
        (checkpoints / "checkpoint-0001.pth").write_bytes(b"newer weights")  # a checkpoint between steps
    assert create_trial(str(checkpoints / "tensors")).steps() == [0, 1]
    assert (checkpoints / "metadata.json").stat().st_mtime_ns == stamp


def test_a_step_is_on_disk_when_record_step_returns(tmp_path):
    instr = Instrumentation("portable", tmp_path, trial_dir=tmp_path / "tensors", save_interval=1, profile_steps=0)
    model, loss_fn = _model(), nn.CrossEntropyLoss()
    instr.attach(model, loss_fn)
    instr.set_mode("train")
    loss_fn(model(torch.randn(4, 6)), torch.randint(0, 3, (4,))).backward()
    instr.record_step(0.0, 0.01)  # no close(): a job stopped here must keep this step
    assert create_trial(str(tmp_path / "tensors")).steps() == [0]
    instr.finish([])


def test_off_mode_records_nothing(tmp_path):
    instr = Instrumentation("off", tmp_path, trial_dir=tmp_path / "tensors")
    instr.attach(_model(), nn.CrossEntropyLoss())
    instr.set_mode("train")
    instr.record_step(0.1, 0.2)
    assert instr.finish([]) == {}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "verbose"}, "debugger mode must be one of"),
    ({"mode": "portable", "save_interval": 0}, "save interval must be >= 1"),
])
def test_bad_settings_are_refused_before_training(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Instrumentation(output_dir=tmp_path, trial_dir=tmp_path / "tensors", **kwargs)
