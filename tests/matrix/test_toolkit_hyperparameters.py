"""Hyperparameters as the sagemaker-training toolkit reads them: its own decoding
(environment.read_hyperparameters), its own command line (mapping.to_cmd_args) and its launch of
the script (process.create, as the PyTorch container's framework module calls it; and the one
/bin/sh line that toolkit 4.x builds there), fed the request builders' values and parsed by
train.py's parser."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sagemaker_training import environment, mapping, process

from infra.config import load_config
from infra.hyperparameters import decoded, encode
from infra.sagemaker_requests import JobLocations, training_job_request
from training.train import parse_args

LOC = JobLocations(role_arn="arn:aws:iam::123456789012:role/r", source_bundle_uri="s3://b/source.tar.gz",
                   data_uri="s3://b/datasets/demo", output_uri="s3://b/runs", region="us-east-1")
#: Values whose text is also JSON of another type, or JSON itself.
TRICKY = {"a": "true", "b": "null", "c": "1e3", "d": '{"k": [1, 2]}', "e": "[1]", "f": "", "g": " 7 ",
          "h": "s3://b/k", "i": 3, "j": 0.5, "k": True, "l": {"x": 1}}


def _toolkit_decoded(tmp_path, monkeypatch, hyperparameters: dict[str, str]) -> dict:
    """The toolkit's own read of hyperparameters.json."""
    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps(hyperparameters))
    monkeypatch.setattr(environment, "hyperparameters_file_dir", str(path))
    return environment.read_hyperparameters()


def test_encoded_values_come_back_unchanged_from_the_toolkits_decoding(tmp_path, monkeypatch):
    assert _toolkit_decoded(tmp_path, monkeypatch, encode(TRICKY)) == TRICKY


@pytest.mark.parametrize("text", ["resnet50", "0.0012", "64", "valid_loss", "true", '{"a": 1}', "not json {"])
def test_decoding_a_value_is_the_toolkits_decoding(tmp_path, monkeypatch, text):
    """What SageMaker passes as plain text (tuned values, _tuning_objective_metric) decodes alike."""
    assert decoded({"x": text}) == _toolkit_decoded(tmp_path, monkeypatch, {"x": text})


def _argv_dump(tmp_path: Path) -> tuple[list[str], Path]:
    script, received = tmp_path / "argv.py", tmp_path / "argv.json"
    script.write_text("import json, sys\nopen(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))\n")
    return [sys.executable, str(script), str(received)], received


def through_the_toolkit(tmp_path, args: list[str]) -> list[str]:
    """The installed toolkit's launch with capture_error, as the PyTorch container's framework module
    starts the script (5.1.4 executes the argument vector)."""
    command, received = _argv_dump(tmp_path)
    code, _, _ = process.create([*command, *args], [], 1, cwd=str(tmp_path), env=dict(os.environ), capture_error=True)
    assert code == 0
    return json.loads(received.read_text())


def through_one_shell_line(tmp_path, args: list[str]) -> list[str]:
    """What sagemaker-training 4.x (4.9.0 read) does in that launch, in the toolkit of older PyTorch
    images: `asyncio.create_subprocess_shell(" ".join(cmd))`, no quoting."""
    command, received = _argv_dump(tmp_path)
    subprocess.run(" ".join([*command, *args]), shell=True, check=True, cwd=tmp_path)
    return json.loads(received.read_text())


@pytest.mark.parametrize("launch", [through_the_toolkit, through_one_shell_line])
def test_rule_parameter_overrides_reach_the_trainer_through_the_toolkits_decoding_and_launch(tmp_path, monkeypatch, launch):
    overrides = {"Overfit": {"patience": 3}, "LossNotDecreasing": {"use_losses_collection": False}}
    cfg = load_config({"debugger": {"rule_parameters": overrides}})
    hyperparameters = _toolkit_decoded(tmp_path, monkeypatch, training_job_request(cfg, LOC, "imgclf-1-final", {})["HyperParameters"])
    user_args = {k: v for k, v in hyperparameters.items() if not k.startswith(("sagemaker_", "_"))}
    monkeypatch.setenv("TRAINING_JOB_NAME", "imgclf-1-final")  # SageMaker sets it; the upload URI is built from it
    args = parse_args([*launch(tmp_path, mapping.to_cmd_args(user_args)), "--model-dir", str(tmp_path / "model")])
    assert args.rule_params == overrides
    assert (args.epochs, args.image_size, args.pretrained, args.debugger) == (5, 224, "imagenet", "portable")
    assert args.evaluation_prefix == LOC.output_uri  # the retrain's upload prefix (training/evaluation.py)
    assert args.evaluation_uri == f"{LOC.output_uri}/imgclf-1-final/evidence/evaluation.json"
