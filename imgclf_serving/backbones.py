"""The backbones on offer: one table that training (which part trains), serving (which network to
rebuild from model-meta.json) and the config (what may be chosen, at synth) all read.

Each is a torchvision classification model by its torchvision name, so that its ImageNet weights
come by the same three routes (torchvision's weights enum, a state_dict file, none) and its
state_dict keys are torchvision's. No torch import here: the CDK app and the CLI read this table.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    """`head`: the final Linear, built with one output per class (its ImageNet weights are never
    loaded). `classifier`: the module around the head (for ResNets the head itself). `last`: the
    layers at the network's last resolution (stride 32), which `--unfreeze last` trains along with
    the classifier."""

    name: str
    head: str
    classifier: str
    last: tuple[str, ...]


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("resnet18", head="fc", classifier="fc", last=("layer4",)),
        Backbone("resnet34", head="fc", classifier="fc", last=("layer4",)),
        Backbone("resnet50", head="fc", classifier="fc", last=("layer4",)),
        Backbone("resnet101", head="fc", classifier="fc", last=("layer4",)),
        Backbone("efficientnet_b0", head="classifier.1", classifier="classifier",
                 last=("features.6", "features.7", "features.8")),
        Backbone("mobilenet_v3_large", head="classifier.3", classifier="classifier",
                 last=("features.13", "features.14", "features.15", "features.16")),
        Backbone("convnext_tiny", head="classifier.2", classifier="classifier", last=("features.6", "features.7")),
    )
}
ARCHITECTURES = tuple(BACKBONES)
DEFAULT_ARCH = "resnet50"
#: `--unfreeze` choices: the head alone, the last stage and the classifier, or everything.
UNFREEZE = ("head", "last", "all")


def backbone(arch: str) -> Backbone:
    if arch not in BACKBONES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return BACKBONES[arch]


def trainable_prefixes(arch: str, unfreeze: str) -> tuple[str, ...]:
    """Module paths whose parameters train for `unfreeze` ("" is the whole network)."""
    b = backbone(arch)
    if unfreeze == "head":
        return (b.head,)
    if unfreeze == "last":
        return (*b.last, b.classifier)
    if unfreeze == "all":
        return ("",)
    raise ValueError(f"unknown unfreeze {unfreeze!r}; choose one of {', '.join(UNFREEZE)}")


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether the parameter or module `name` lies inside one of the module paths `prefixes`
    (whole path components: `features.1` does not contain `features.16`)."""
    return any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)
