"""Starting weights and the trainable part of the network (`--pretrained`, `--unfreeze`)."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torch import nn
from torchvision import models

from imgclf_serving.architecture import build_classifier
from training.errors import TrainerError
from training.model import build_model, train_mode
from training.train import cli

OFFLINE_ERROR = (r"could not download the ImageNet weights for resnet50 from https://\S+ "
                 r"\(\[Errno 101\] Network is unreachable\): use --pretrained channel, a \.pth path or none")


@pytest.fixture(scope="module")
def imagenet_like_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ResNet-50 state_dict with a 1000-class head, as torchvision's ImageNet file has."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(build_classifier("resnet50", 1000).state_dict(), path)
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty weights cache and no route out: torch.hub's download fails as it does offline."""
    def no_route(*args, **kwargs):
        raise URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(torch.hub, "urlopen", no_route)


def test_a_weights_file_fills_the_backbone_and_the_head_is_new(imagenet_like_weights: Path):
    saved = torch.load(imagenet_like_weights, weights_only=True)
    model = build_model("resnet50", 3, str(imagenet_like_weights), "head")
    assert torch.equal(model.state_dict()["layer3.2.conv2.weight"], saved["layer3.2.conv2.weight"])
    assert model.fc.out_features == 3


def test_the_pretrained_channel_supplies_its_single_pth_file(imagenet_like_weights: Path, tmp_path, monkeypatch):
    (tmp_path / imagenet_like_weights.name).write_bytes(imagenet_like_weights.read_bytes())
    monkeypatch.setenv("SM_CHANNEL_PRETRAINED", str(tmp_path))
    model = build_model("resnet50", 3, "channel", "head")
    saved = torch.load(imagenet_like_weights, weights_only=True)
    assert torch.equal(model.state_dict()["conv1.weight"], saved["conv1.weight"])


def test_a_pretrained_channel_without_exactly_one_pth_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SM_CHANNEL_PRETRAINED", str(tmp_path))
    with pytest.raises(TrainerError, match="must hold exactly one .pth file, found 0"):
        build_model("resnet50", 3, "channel", "head")


def test_a_file_that_is_not_a_state_dict_is_an_error(tmp_path):
    (tmp_path / "w.pth").write_text("not torch")
    with pytest.raises(TrainerError, match=r"^cannot read pretrained weights .*w\.pth"):
        build_model("resnet50", 3, str(tmp_path / "w.pth"), "head")


def test_weights_of_another_architecture_are_an_error(tmp_path):
    torch.save(models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(TrainerError, match="do not fit this architecture"):
        build_model("resnet50", 3, str(tmp_path / "r18.pth"), "head")


@pytest.mark.parametrize("unfreeze, trainable", [
    ("head", {"fc"}), ("last", {"layer4", "fc"}),
    ("all", {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"})])
def test_unfreeze_decides_which_top_level_blocks_train(unfreeze, trainable):
    model = build_model("resnet50", 3, "none", unfreeze)
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == trainable


def test_batchnorm_in_the_frozen_backbone_keeps_its_running_statistics_while_training():
    model = build_model("resnet50", 3, "none", "last")
    train_mode(model)
    assert not model.layer3[0].bn1.training and model.layer4[0].bn1.training and model.training
    before = model.layer3[0].bn1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(model.layer3[0].bn1.running_mean, before)
    assert isinstance(model.fc, nn.Linear)


def test_imagenet_weights_without_network_are_an_error_naming_the_offline_choices(offline):
    with pytest.raises(TrainerError, match=f"^{OFFLINE_ERROR}$"):
        build_model("resnet50", 3, "imagenet", "last")


def test_the_trainer_reports_an_offline_imagenet_download_as_one_line(offline, small_splits, tmp_path, capsys):
    code = cli(["--train", str(small_splits / "train"), "--valid", str(small_splits / "valid"),
                "--test", str(small_splits / "test"), "--model-dir", str(tmp_path / "model"), "--pretrained", "imagenet", "--image-size", "32",
                "--num-workers", "0", "--debugger", "off"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and re.fullmatch(f"error: {OFFLINE_ERROR}\n", err), err
