"""The network to fine-tune: serving's architecture, starting weights, and which part trains.

The backbone is any of imgclf_serving/backbones.py's table. Weights come from one of four places
(`--pretrained`): `imagenet` downloads torchvision's DEFAULT weights for the backbone (cloud jobs
with internet only), `channel` reads the single `.pth` state_dict in the `pretrained` input channel
(network-isolated jobs), a path reads that file, `none` starts from random weights (tests, offline
demo). The head (the backbone's final Linear) is always new.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from imgclf_serving.architecture import build_classifier
from imgclf_serving.backbones import backbone, trainable_prefixes, within
from training.errors import TrainerError


def _channel_weights_file(channel_dir: str | None) -> Path:
    if not channel_dir:
        raise TrainerError("--pretrained channel needs the 'pretrained' input channel (SM_CHANNEL_PRETRAINED)")
    files = sorted(Path(channel_dir).glob("*.pth"))
    if len(files) != 1:
        raise TrainerError(f"pretrained channel {channel_dir} must hold exactly one .pth file, found {len(files)}")
    return files[0]


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainerError(f"pretrained weights file {path} does not exist") from None
    except Exception as err:  # torch raises many types for a file that is not a state_dict
        raise TrainerError(f"cannot read pretrained weights {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TrainerError(f"pretrained weights {path} are not a state_dict (a dict of tensors)")
    return state


def _imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's DEFAULT weights for `arch`: a download, so only for jobs with internet.
    Without it (a network-isolated job, a VPC without egress, an offline machine) the download
    fails with an OSError (URLError, timeout); the person needs the offline alternatives."""
    weights = models.get_model_weights(arch).DEFAULT
    print(f"downloading {arch} {weights} weights", flush=True)
    try:
        return weights.get_state_dict(progress=False)
    except OSError as err:
        reason = str(getattr(err, "reason", None) or err.strerror or err).strip() or type(err).__name__
        raise TrainerError(f"could not download the ImageNet weights for {arch} from {weights.url} "
                           f"({reason.splitlines()[0]}): use --pretrained channel, a .pth path or none") from None


def load_backbone_weights(model: nn.Module, arch: str, state: dict[str, torch.Tensor], source: str) -> None:
    """Load everything but the head; any other missing or mismatched tensor is an error."""
    own = model.state_dict()
    head = (backbone(arch).head,)
    weights = {k: v for k, v in state.items() if not within(k, head)}
    mismatched = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
    unexpected = [k for k in weights if k not in own]
    missing = [k for k in own if k not in weights and not within(k, head)]
    if mismatched or unexpected or missing:
        examples = (mismatched or unexpected or missing)[:3]
        raise TrainerError(f"pretrained weights {source} do not fit this architecture "
                           f"({len(mismatched)} tensors of another shape, {len(unexpected)} unknown, "
                           f"{len(missing)} missing; e.g. {examples})")
    model.load_state_dict(weights, strict=False)


def build_model(arch: str, num_classes: int, pretrained: str, unfreeze: str) -> nn.Module:
    """The classifier with its starting weights and `unfreeze`'s parameters trainable."""
    try:
        model = build_classifier(arch, num_classes)
    except ValueError as err:
        raise TrainerError(str(err)) from None
    if pretrained == "imagenet":
        load_backbone_weights(model, arch, _imagenet_state_dict(arch), f"torchvision {arch}")
    elif pretrained != "none":
        path = _channel_weights_file(os.environ.get("SM_CHANNEL_PRETRAINED")) if pretrained == "channel" \
            else Path(pretrained)
        load_backbone_weights(model, arch, _read_state_dict(path), str(path))
    elif unfreeze != "all":
        print(f"warning: --pretrained none with --unfreeze {unfreeze} trains a head on random features",
              file=sys.stderr, flush=True)
    prefixes = trainable_prefixes(arch, unfreeze)
    for name, param in model.named_parameters():
        param.requires_grad = within(name, prefixes)
    return model


def train_mode(model: nn.Module) -> None:
    """model.train(), except that every module whose parameters are all frozen stays in eval mode:
    its BatchNorm keeps its running statistics and its dropout and stochastic depth stay off, so
    a frozen backbone computes the same features in every epoch."""
    model.train()
    for module in model.modules():
        parameters = list(module.parameters())
        if parameters and not any(p.requires_grad for p in parameters):
            module.eval()
