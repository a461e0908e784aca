"""train.py launched by the real sagemaker-training toolkit, the way the PyTorch training container
does: a job folder laid out like /opt/ml, the source bundle (tar.gz) as `sagemaker_submit_directory`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.source_bundle import build_source_bundle
from training.metrics import RULE_NAMES, metric_definitions, parse_metrics

CHANNELS = ("train", "valid", "test")
#: As infra's request builders write them: every value a string.
HYPERPARAMETERS = {
    "epochs": "1", "image-size": "32", "arch": "resnet50", "pretrained": "none", "unfreeze": "all",
    "batch-size": "16", "lr": "0.01", "num-workers": "0", "debugger": "portable",
    "save-interval": "2", "profile-steps": "2",
    "sagemaker_program": "training/train.py", "sagemaker_region": "us-east-1",
    "sagemaker_container_log_level": "20",
    "_tuning_objective_metric": "valid_loss",  # what a tuning trial also gets
}


@pytest.fixture(scope="module")
def source_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_source_bundle(tmp_path_factory.mktemp("bundle"))


def make_job(base: Path, splits: Path, bundle: Path, **hyperparameters: str) -> Path:
    """`base` laid out as SageMaker lays out /opt/ml before the container starts; `hyperparameters`
    change or add to HYPERPARAMETERS."""
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(
        json.dumps({**HYPERPARAMETERS, **hyperparameters, "sagemaker_submit_directory": str(bundle)}))
    (config / "inputdataconfig.json").write_text(json.dumps({
        c: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
        for c in CHANNELS}))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    for channel in CHANNELS:
        shutil.copytree(splits / channel, base / "input" / "data" / channel)
    for folder in ("model", "output", "checkpoints"):
        (base / folder).mkdir()
    return base


def run_toolkit(base: Path, **extra_env: str) -> subprocess.CompletedProcess:
    """The container's `train` command: sagemaker_training.cli.train:main."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    # Studio local mode skips the wait for the host `algo-1` to resolve in DNS.
    env.update(SAGEMAKER_BASE_DIR=str(base), SM_STUDIO_LOCAL_MODE="true", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", **extra_env)
    return subprocess.run([sys.executable, "-c", "from sagemaker_training.cli.train import main; main()"],
                          capture_output=True, text=True, timeout=600, cwd=base, env=env)


@pytest.fixture(scope="module")
def toolkit_job(small_splits: Path, source_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    base = make_job(tmp_path_factory.mktemp("toolkit") / "opt_ml", small_splits, source_bundle)
    return base, run_toolkit(base)


def test_the_toolkit_runs_the_trainer_from_the_source_bundle_and_reports_success(toolkit_job):
    base, result = toolkit_job
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (base / "output" / "success").exists() and not (base / "output" / "failure").exists()
    assert (base / "code" / "training" / "train.py").is_file()  # extracted from the tar.gz


def test_the_trainer_writes_the_model_dir_the_toolkit_names_in_sm_model_dir(toolkit_job):
    base, _ = toolkit_job
    model_dir = base / "model"
    assert {p.name for p in model_dir.iterdir()} >= {"model.pth", "classes.json", "model-meta.json", "code"}
    assert (base / "checkpoints" / "checkpoint-0001.pth").is_file()  # /opt/ml/checkpoints in a job


def test_the_metric_regexes_read_epoch_test_and_rule_metrics_from_the_job_log(toolkit_job):
    _, result = toolkit_job
    found = parse_metrics(result.stdout, metric_definitions())
    assert {"train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc"} <= found.keys()
    assert all(found[f"rule_{rule}"][-1] in (0, 1) for rule in RULE_NAMES if f"rule_{rule}" in found)
    assert any(name.startswith("rule_") for name in found)


def test_the_toolkit_reports_a_bad_channel_as_a_failed_job_with_the_trainer_s_reason(
        small_splits: Path, source_bundle: Path, tmp_path: Path):
    base = make_job(tmp_path / "opt_ml", small_splits, source_bundle)
    shutil.rmtree(base / "input" / "data" / "valid" / "cat")
    result = run_toolkit(base)
    assert result.returncode == 1
    assert "error: valid classes differ from train classes: missing ['cat']" in result.stderr
    assert "Traceback" not in result.stderr.split("error: valid classes")[0]
    assert "ExecuteUserScriptError" in (base / "output" / "failure").read_text()
