"""training/predictions.py: at the end of a real (short, in-process) training run, one pass over the
test split feeds both the evaluation (evaluation.json) and the drift report's baseline."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer_samples import FAST_FLAGS, copy_splits
from training import train
from training.evaluation import EVALUATION_FILE
from training.monitoring_baseline import BASELINE_FILE
from training.predictions import predictions

#: Fewer test images than train or valid ones, and one batch per split: a test batch is told apart by its size.
PER_CLASS, TEST_PER_CLASS = 4, 3


@pytest.fixture(scope="module")
def splits(small_splits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_splits(small_splits, tmp_path_factory.mktemp("one-pass") / "splits", per_class=PER_CLASS)
    for class_dir in (root / "test").iterdir():
        for image in sorted(class_dir.iterdir())[TEST_PER_CLASS:]:
            image.unlink()
    return root


def _test_size(splits: Path) -> int:
    return sum(1 for p in (splits / "test").rglob("*") if p.is_file())


def test_the_test_split_goes_through_the_network_once_for_its_metrics_and_once_for_both_reports(
        splits, tmp_path, monkeypatch):
    batches: list[int] = []  # the size of each batch the network answers in eval mode
    build_model = train.build_model

    def counted(*args, **kwargs):
        network = build_model(*args, **kwargs)
        network.register_forward_hook(lambda module, inputs, _: None if module.training else batches.append(len(inputs[0])))
        return network

    monkeypatch.setattr(train, "build_model", counted)
    model_dir = tmp_path / "model"
    code = train.cli(["--train", str(splits / "train"), "--valid", str(splits / "valid"), "--test", str(splits / "test"),
                      "--model-dir", str(model_dir), *FAST_FLAGS, "--batch-size", "64", "--epochs", "1", "--optimize", "none"])
    assert code == 0
    tested = _test_size(splits)
    assert tested < PER_CLASS * len(list((splits / "valid").iterdir()))
    # test_loss/test_acc (sharded across ranks), then predictions over the whole split for both files.
    assert batches.count(tested) == 2

    evaluation = json.loads((model_dir / EVALUATION_FILE).read_text())
    baseline = json.loads((model_dir / BASELINE_FILE).read_text())
    matrix = evaluation["confusion_matrix"]
    assert baseline["count"] == sum(map(sum, matrix)) == tested
    # The baseline's class mix is the evaluation's predicted columns: the same answers.
    assert baseline["class_counts"] == {c: sum(row[i] for row in matrix) for i, c in enumerate(evaluation["classes"])}


class _Logits(torch.nn.Module):
    """A 'network' whose logits are its input."""

    def forward(self, x):
        return x


def test_the_answers_are_the_logits_argmax_with_its_softmax_probability_in_the_loaders_order():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    loader = [(logits[:2], torch.tensor([0, 1])), (logits[2:], torch.tensor([1]))]
    found = predictions(_Logits(), loader, torch.device("cpu"))
    assert (found.targets, found.predicted) == ([0, 1, 1], [0, 2, 1])
    assert found.confidences == pytest.approx(torch.softmax(logits, dim=1).max(dim=1).values.tolist())
