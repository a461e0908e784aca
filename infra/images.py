"""Container image URIs, resolved offline from sagemaker-core's region map.

The PyTorch training and inference images and the Debugger rule-evaluator image live in AWS-owned
ECR registries whose account differs per region; sagemaker-core ships that map, so synth needs no
network. Config can override the training and inference images (a newer or private image).
Serverless endpoints need the CPU inference image: the GPU ones exceed serverless's 10 GB image limit.
"""
from __future__ import annotations

from functools import lru_cache

from infra.config import Config

#: Any CPU instance type: image_uris picks cpu/gpu from the instance family only.
_CPU_INSTANCE = "ml.m5.large"


class ImageError(ValueError):
    """No image is published for the requested framework version / Python version / region."""


def _retrieve(what: str, **kwargs: str) -> str:
    try:
        return _cached_retrieve(tuple(sorted(kwargs.items())))
    except ValueError as err:
        wanted = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k != "framework")
        raise ImageError(
            f"no {what} image for {wanted}: {err} "
            "(pick a supported version/region, or set training_image / inference_image in the config)"
        ) from None


@lru_cache(maxsize=64)
def _cached_retrieve(kwargs: tuple[tuple[str, str], ...]) -> str:
    # A lookup re-reads sagemaker-core's JSON map (about 0.1 s); synth asks for the same images often.
    from sagemaker.core import image_uris  # heavy import (about 2 s): only when an image is resolved

    return image_uris.retrieve(**dict(kwargs))


def training_image(cfg: Config, region: str, instance_type: str) -> str:
    """The PyTorch training image for `instance_type` (CPU or GPU build), unless overridden."""
    if cfg.training_image:
        return cfg.training_image
    return _retrieve(
        "PyTorch training",
        framework="pytorch",
        region=region,
        version=cfg.training.framework_version,
        py_version=cfg.training.py_version,
        instance_type=instance_type,
        image_scope="training",
    )


def inference_image(cfg: Config, region: str) -> str:
    """The PyTorch inference image: CPU for serverless, per instance type for real-time."""
    if cfg.inference_image:
        return cfg.inference_image
    instance_type = _CPU_INSTANCE if cfg.endpoint.mode == "serverless" else cfg.endpoint.instance_type
    return _retrieve(
        "PyTorch inference",
        framework="pytorch",
        region=region,
        version=cfg.endpoint.inference_framework_version,
        py_version=cfg.training.py_version,
        instance_type=instance_type,
        image_scope="inference",
    )


def rule_evaluator_image(region: str) -> str:
    """SageMaker Debugger's built-in rule container (debugger and profiler rules alike)."""
    return _retrieve("SageMaker Debugger rule-evaluator", framework="debugger", region=region)
