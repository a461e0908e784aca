"""Grad-CAM for the top class, from the same forward pass that gives the top-k.

Why a short implementation on torch hooks rather than captum's LayerGradCam or the grad-cam
package: the serving container installs neither, and importing them costs cold start on every new
replica (benchmarks/explain_cost.py prints their import time beside this module's); Grad-CAM itself is a
dozen lines of torch.

Cost: the network's parameters are frozen (inference never trains), and a forward hook makes the
target layer's output the autograd graph's only leaf, so the forward records operations only
after that layer, and the backward runs through the head alone (pool and classifier). An explained
request costs about one forward and a small backward; benchmarks/explain_cost.py measures it.

The target layer is the backbone's last stage (imgclf_serving/backbones.py `last[-1]`, stride 32):
the one table training and serving read. The heatmap covers the centre crop the eval transform
feeds the network, so `box` gives that crop in the caller's image pixels.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from imgclf_serving.backbones import backbone
from imgclf_serving.preprocess import resize_size

METHOD = "grad-cam"
#: Heatmap opacity at the hottest pixel: the image stays visible under it.
MAX_ALPHA = 200


@dataclass(frozen=True)
class Explanation:
    """The top class's heatmap (RGBA PNG bytes at the network's input size), the class index, the
    layer it was taken at, and the centre crop it covers as (left, top, width, height) in the
    request image's pixels."""

    class_index: int
    png: bytes
    layer: str
    box: tuple[int, int, int, int]

    def to_json(self, label: str) -> dict:
        return {
            "method": METHOD,
            "label": label,
            "layer": self.layer,
            "box": list(self.box),
            "heatmap_png": base64.b64encode(self.png).decode("ascii"),
        }


class GradCam:
    """Grad-CAM over one network, at its backbone's last stage."""

    def __init__(self, network: torch.nn.Module, arch: str) -> None:
        self.layer_name = backbone(arch).last[-1]
        self.layer = network.get_submodule(self.layer_name)
        # Frozen parameters keep the forward from recording the layers before the target one.
        self.network = network.requires_grad_(False)

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [1, classes] for a batch of one, and the top class's map [H, W] in [0, 1] at the
        batch's spatial size."""
        if batch.shape[0] != 1:
            raise ValueError(f"Grad-CAM explains one image at a time, got a batch of {batch.shape[0]}")
        kept: list[torch.Tensor] = []

        def keep(_module, _inputs, output: torch.Tensor) -> torch.Tensor:
            leaf = output.detach().requires_grad_(True)
            kept.append(leaf)
            return leaf

        handle = self.layer.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                logits = self.network(batch)
                (gradients,) = torch.autograd.grad(logits[0, logits[0].argmax()], kept[0])
        finally:
            handle.remove()
        activations = kept[0].detach()
        weights = gradients.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * activations).sum(dim=1, keepdim=True))
        cam = torch.nn.functional.interpolate(cam, size=batch.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        peak = cam.max()
        return logits.detach(), (cam / peak if peak > 0 else cam).float().cpu()


def explain(cam: GradCam, batch: torch.Tensor, image_size: tuple[int, int], crop: int) -> tuple[torch.Tensor, Explanation]:
    """Logits and the Explanation of the top class for one image of `image_size` (width, height)
    that the eval transform at `crop` pixels turned into `batch`."""
    logits, heatmap = cam(batch)
    explanation = Explanation(
        class_index=int(logits[0].argmax()),
        png=heatmap_png(heatmap),
        layer=cam.layer_name,
        box=crop_box(image_size, crop),
    )
    return logits, explanation


def heatmap_png(heatmap: torch.Tensor) -> bytes:
    """A [H, W] map in [0, 1] as an RGBA PNG: a blue-to-red ramp whose opacity grows with the value."""
    value = heatmap.clamp(0, 1).numpy()
    ramp = [np.clip(1.5 - np.abs(4 * value - centre), 0, 1) for centre in (3, 2, 1)]  # red, green, blue
    rgba = np.stack([*ramp, value * (MAX_ALPHA / 255)], axis=-1)
    out = io.BytesIO()
    Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").save(out, format="PNG", optimize=True)
    return out.getvalue()


def crop_box(image_size: tuple[int, int], crop: int) -> tuple[int, int, int, int]:
    """The centre square the eval transform keeps (resize the short side to resize_size(crop), then
    crop `crop`), in the original image's pixels."""
    width, height = image_size
    side = min(width, height) * crop / resize_size(crop)
    return round((width - side) / 2), round((height - side) / 2), round(side), round(side)
