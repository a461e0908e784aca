"""Every backbone of imgclf_serving/backbones.py's table: built with a head for N classes, its
documented parts trainable, its weights by the file and torchvision routes, trained by the real
trainer on tiny images, and its model dir served by the real handlers."""
from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torch import nn

from imgclf_serving import inference
from imgclf_serving.architecture import build_classifier
from imgclf_serving.backbones import ARCHITECTURES, BACKBONES, trainable_prefixes, within
from training.errors import TrainerError
from training.metrics import metric_definitions, parse_metrics
from training.model import build_model, train_mode
from training.train import cli

from trainer_samples import copy_splits

CLASSES = 5


def _trainable(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_backbone_builds_with_a_new_head_for_n_classes(arch):
    model = build_model(arch, CLASSES, "none", "all").eval()
    head = model.get_submodule(BACKBONES[arch].head)
    assert isinstance(head, nn.Linear) and head.out_features == CLASSES
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, CLASSES)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_unfreeze_head_trains_the_final_linear_only(arch):
    model = build_model(arch, CLASSES, "none", "head")
    head = BACKBONES[arch].head
    assert _trainable(model) == {f"{head}.weight", f"{head}.bias"}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_unfreeze_last_trains_the_last_stage_and_the_classifier_and_nothing_before(arch):
    model = build_model(arch, CLASSES, "none", "last")
    backbone = BACKBONES[arch]
    names = [name for name, _ in model.named_parameters()]
    expected = {n for n in names if within(n, (*backbone.last, backbone.classifier))}
    assert _trainable(model) == expected
    # The listed stage really is the last one: every parameter after its first one trains.
    first = names.index(min(expected, key=names.index))
    assert set(names[first:]) == expected and first > 0


def test_module_paths_match_whole_components():
    assert within("features.1.0.weight", ("features.1",))
    assert not within("features.16.0.weight", ("features.1",))
    assert within("anything", ("",))


@pytest.mark.parametrize("arch", ["efficientnet_b0", "convnext_tiny", "mobilenet_v3_large"])
def test_the_frozen_part_keeps_its_statistics_dropout_and_stochastic_depth_off(arch):
    model = build_model(arch, CLASSES, "none", "last")
    train_mode(model)
    trainable = trainable_prefixes(arch, "last")
    # Modules holding parameters, none of them trainable (containers of both keep training).
    frozen = [m for name, m in model.named_modules()
              if [p for p, _ in m.named_parameters(prefix=name)]
              and not any(within(p, trainable) for p, _ in m.named_parameters(prefix=name))]
    assert frozen and not any(m.training for m in frozen)
    assert all(m.training for name, m in model.named_modules() if name and within(name, trainable))
    frozen_norms = [m for m in frozen if isinstance(m, nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in frozen_norms]
    model(torch.randn(4, 3, 32, 32))
    assert all(torch.equal(m.running_mean, b) for m, b in zip(frozen_norms, before, strict=True))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_weights_file_of_each_backbone_fills_all_but_the_head(arch, tmp_path):
    torch.manual_seed(2)
    saved = build_classifier(arch, 1000).state_dict()  # torchvision's ImageNet layout
    torch.save(saved, tmp_path / f"{arch}.pth")
    model = build_model(arch, CLASSES, str(tmp_path / f"{arch}.pth"), "head")
    head = BACKBONES[arch].head
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in saved.items() if not within(k, (head,)))
    assert own[f"{head}.weight"].shape[0] == CLASSES


def test_weights_of_one_backbone_do_not_fit_another(tmp_path):
    torch.save(build_classifier("mobilenet_v3_large", 1000).state_dict(), tmp_path / "m.pth")
    with pytest.raises(TrainerError, match="do not fit this architecture"):
        build_model("efficientnet_b0", CLASSES, str(tmp_path / "m.pth"), "head")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_imagenet_weights_come_from_each_backbones_torchvision_entry(arch, monkeypatch, tmp_path):
    """The cloud route asks torchvision's weights enum for the arch's own file (no download here:
    the request fails as it does offline, and the error names the URL it tried)."""
    def no_route(*args, **kwargs):
        raise URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(torch.hub, "urlopen", no_route)
    from torchvision import models

    url = models.get_model_weights(arch).DEFAULT.url
    with pytest.raises(TrainerError, match=f"^could not download the ImageNet weights for {arch} from {re.escape(url)} "):
        build_model(arch, CLASSES, "imagenet", "last")


@pytest.fixture(scope="module")
def tiny_splits(demo_splits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 images per class and split (32 px): one training step of 8 images per epoch."""
    return copy_splits(demo_splits, tmp_path_factory.mktemp("tiny") / "splits", per_class=2)


@pytest.fixture(scope="module", params=ARCHITECTURES)
def trained(request, tiny_splits: Path, tmp_path_factory: pytest.TempPathFactory):
    """(arch, model dir, the trainer's stdout): one epoch (one step) of the real trainer."""
    arch = request.param
    model_dir = tmp_path_factory.mktemp(arch) / "model"
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli(["--train", str(tiny_splits / "train"), "--valid", str(tiny_splits / "valid"),
                    "--test", str(tiny_splits / "test"), "--model-dir", str(model_dir), "--arch", arch,
                    "--epochs", "1", "--image-size", "32", "--pretrained", "none", "--unfreeze", "all",
                    "--batch-size", "8", "--num-workers", "0", "--debugger", "off"])
    assert code == 0, out.getvalue()
    return arch, model_dir, out.getvalue()


def test_each_backbone_trains_an_epoch_and_reports_its_metrics(trained):
    _, _, log = trained
    found = parse_metrics(log, metric_definitions())
    assert {"train_loss", "valid_loss", "test_acc"} <= found.keys()
    assert all(v == v for values in found.values() for v in values)  # no NaN


def test_each_backbones_model_dir_serves_through_the_handlers(trained, tiny_splits: Path):
    arch, model_dir, _ = trained
    meta = json.loads((model_dir / "model-meta.json").read_text())
    assert (meta["arch"], meta["optimize"]) == (arch, "none")
    model = inference.model_fn(str(model_dir))
    assert isinstance(model.network, nn.Module)
    image_path = next((tiny_splits / "test").rglob("*.jpg"))
    image = inference.input_fn(image_path.read_bytes(), "image/jpeg")
    body, content_type = inference.output_fn(inference.predict_fn(image, model), "application/json")
    answer = json.loads(body)
    assert content_type == "application/json" and answer["model"]["name"] == arch
    assert {p["label"] for p in answer["predictions"]} <= set(json.loads((model_dir / "classes.json").read_text()))
