"""The one definition of inference preprocessing, shared by training's eval transform and serving.

Copied into the model's `code/imgclf_serving/` folder by the trainer, so that the inference container
runs exactly what validation ran.
"""
from __future__ import annotations

from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 224


def resize_size(image_size: int) -> int:
    """Short side before the centre crop, in the 256/224 ratio torchvision's references use."""
    return max(image_size, round(image_size * 256 / 224))


def normalize() -> transforms.Normalize:
    return transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)


def eval_transform(image_size: int = DEFAULT_IMAGE_SIZE) -> transforms.Compose:
    """PIL RGB image -> normalised float tensor [3, image_size, image_size]."""
    return transforms.Compose(
        [
            transforms.Resize(resize_size(image_size)),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            normalize(),
        ]
    )
