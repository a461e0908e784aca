"""The one-page training report and the profiler summary of a real run agree with the run."""
from __future__ import annotations

import json

import pytest
from debug_loop import load_split, train
from PIL import Image

from training.metrics import RULE_NAMES
from training.output_files import LOSS_PNG, PROFILER_SUMMARY_JSON, REPORT_MD, STEP_PNG, UTILISATION_PNG
from training.training_report import write_report


@pytest.fixture(scope="module")
def run(demo_splits, tmp_path_factory):
    data = load_split(demo_splits / "train"), load_split(demo_splits / "valid")
    return train(data, tmp_path_factory.mktemp("report"), epochs=2, profile_steps=4)


def test_profiler_summary_counts_every_training_step_and_the_window(run):
    summary = json.loads((run.out / PROFILER_SUMMARY_JSON).read_text())
    assert summary["steps"] == run.train_steps == 16
    assert summary["profiled_steps"] == 4
    assert summary["data_wait_pct"] + summary["compute_pct"] == pytest.approx(100.0)
    assert summary["top_ops"]


def test_report_shows_losses_step_time_rules_and_top_operators(run):
    text = (run.out / REPORT_MD).read_text()
    for heading in ("## Loss", "## Epochs", "## Debugger rules", "## Step time", "## Utilisation",
                    "## Top operators (4 profiled steps)"):
        assert heading in text
    assert "16 training steps" in text
    for rule in RULE_NAMES:
        assert f"[{rule}](https://docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html#" in text


def test_report_plots_are_real_png_images(run):
    for name in (LOSS_PNG, STEP_PNG, UTILISATION_PNG):
        with Image.open(run.out / name) as image:
            assert image.format == "PNG" and image.width > 300


def test_report_without_profile_or_rules_says_so(tmp_path):
    path = write_report(tmp_path, [{"epoch": 1, "train_loss": 1.0, "valid_loss": 1.2}], [], None)
    text = path.read_text()
    assert "Rules were not evaluated" in text and "## Step time" not in text
    assert (tmp_path / LOSS_PNG).exists() and not (tmp_path / STEP_PNG).exists()
