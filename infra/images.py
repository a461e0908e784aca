"""Container image URIs, resolved offline from sagemaker-core's region map, and how long AWS patches them.

The PyTorch training and inference images and the Debugger rule-evaluator image live in AWS-owned
ECR registries whose account differs per region; sagemaker-core ships that map, so synth needs no
network. Config can pin another version or override an image with a URI (a newer or private image).

Training defaults to the newest version in sagemaker-core's `pytorch-amzn2023` map: AWS's Amazon
Linux 2023 PyTorch images, its current line (the Ubuntu `pytorch-training` line ended at 2.10). A
pinned version that map lacks falls back to the Ubuntu images (`pytorch` map, tagged with
`py_version`). CPU or GPU follows the instance type.

`SUPPORT` records, for each image AWS publishes that this project can reference, its end of patch
(the date after which AWS ships no more security fixes) and its Python: one table read by the synth
warning, the test that keeps the defaults patched, the test that installs the trainer's
requirements for the training image's Python, and the trainer's serving-python (the ONNX Runtime
wheel the model dir ships for the serving image).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Iterable, NamedTuple

from infra.config import Config

#: Instance types that stand for each processor: image_uris picks cpu/gpu from the instance family only.
_CPU_INSTANCE = "ml.m5.large"
_GPU_INSTANCE = "ml.g4dn.xlarge"

TRAINING = "training"
INFERENCE = "inference"


class Family(NamedTuple):
    """A line of images: sagemaker-core's framework map (`image_uri_config/<framework>.json`) and
    the scope within it."""

    framework: str
    scope: str


PYTORCH_AL2023 = Family("pytorch-amzn2023", TRAINING)
PYTORCH_TRAINING = Family("pytorch", TRAINING)
PYTORCH_INFERENCE = Family("pytorch", INFERENCE)
RAY_SERVE = Family("ray-serve", INFERENCE)
#: The PyTorch inference image of endpoint.container 'torchserve' when no version is pinned: the last
#: one AWS built with TorchServe.
LAST_TORCHSERVE_VERSION = "2.6"


@dataclass(frozen=True)
class Support:
    """`end_of_patch` None: AWS patches the image and has announced no end of patch."""

    end_of_patch: date | None
    python: str
    source: str

    def patched_on(self, day: date) -> bool:
        return self.end_of_patch is None or day <= self.end_of_patch


_DLC_DATA = "aws/deep-learning-containers docs/src/data/"

#: Family -> version (major.minor) -> support, from AWS's Deep Learning Containers release data (the
#: `eop` and `python` of each image's file under docs/src/data/, which the DLC support policy page is
#: built from). A version missing here has no end of patch on record: synth warns about it.
SUPPORT: dict[Family, dict[str, Support]] = {
    PYTORCH_AL2023: {
        "2.11": Support(date(2027, 4, 30), "3.12", _DLC_DATA + "pytorch/2.11-cuda-sagemaker.yml"),
        "2.12": Support(date(2027, 7, 2), "3.12", _DLC_DATA + "pytorch/2.12-cuda-sagemaker.yml"),
        "2.13": Support(date(2027, 7, 20), "3.12", _DLC_DATA + "pytorch/2.13-{cpu,cuda}-sagemaker.yml"),
        "2.14": Support(date(2027, 9, 28), "3.12", _DLC_DATA + "pytorch/2.14-{cpu,cuda}-sagemaker.yml"),
    },
    PYTORCH_TRAINING: {
        "2.6": Support(date(2026, 1, 29), "3.12", _DLC_DATA + "pytorch-training/2.6-gpu-sagemaker.yml"),
        "2.7": Support(date(2026, 4, 23), "3.12", "aws/deep-learning-containers docs/reference/support_policy.md"),
        "2.8": Support(date(2026, 8, 6), "3.12", "DLC support policy (aws.github.io/deep-learning-containers)"),
        "2.9": Support(date(2026, 10, 15), "3.12", _DLC_DATA + "pytorch-training/2.9-gpu-sagemaker.yml"),
        "2.10": Support(date(2027, 1, 21), "3.13", _DLC_DATA + "pytorch-training/2.10-gpu-sagemaker.yml"),
    },
    PYTORCH_INFERENCE: {
        # The last TorchServe image; its patching was extended to this date (DLC support policy,
        # aws/deep-learning-containers PR #6290).
        "2.6": Support(date(2026, 6, 30), "3.12", _DLC_DATA + "pytorch-inference/2.6-cpu-sagemaker.yml"),
    },
    RAY_SERVE: {
        # AWS's Ray Serve container (tags serve-ml-sagemaker-{cpu,cuda}-v1.x; v1.4: Ray 2.57, PyTorch
        # 2.13), first released 2026-04-23 and patched in place. Neither the support policy nor its
        # release data (docs/src/data/ray/*.yml has no `eop`) gives it an end of patch; v1 is AWS's
        # moving tag for the newest v1.x. Versions 1.2 and 1.3 are left out: nothing says they are
        # still patched.
        "1": Support(None, "3.13", _DLC_DATA + "ray/2.57-cpu-sagemaker.yml"),
        "1.4": Support(None, "3.13", "aws/deep-learning-containers docker/ray/pyproject.toml (ray[serve] 2.57.0)"),
    },
}


class ImageError(ValueError):
    """No image is published for the requested framework version / Python version / region."""


class Release(NamedTuple):
    """One published image line and version: what an image URI stands for."""

    family: Family
    version: str

    @property
    def support(self) -> Support | None:
        return SUPPORT.get(self.family, {}).get(_minor(self.version))

    def __str__(self) -> str:
        return f"{self.family.framework} {self.family.scope} {self.version}"


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _retrieve(what: str, **kwargs: str) -> str:
    try:
        return _cached_retrieve(tuple(sorted(kwargs.items())))
    except ValueError as err:
        wanted = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k != "framework")
        raise ImageError(
            f"no {what} image for {wanted}: {err} "
            "(pick a supported version/region, or set training_image / inference_image in the config)"
        ) from None


@lru_cache(maxsize=256)
def _cached_retrieve(kwargs: tuple[tuple[str, str], ...]) -> str:
    # A lookup re-reads sagemaker-core's JSON map (about 0.1 s); synth asks for the same images often.
    from sagemaker.core import image_uris  # heavy import (about 2 s): only when an image is resolved

    return image_uris.retrieve(**dict(kwargs))


@lru_cache(maxsize=16)
def _versions(family: Family) -> dict[str, dict]:
    """sagemaker-core's version entries of a family, its aliases ("2.14" -> "2.14.0", "latest")
    included as keys."""
    from sagemaker.core import image_uris

    config = image_uris.config_for_framework(family.framework)
    config = config.get(family.scope, config)  # maps with one scope (ray-serve) have no section per scope
    versions = dict(config["versions"])
    for alias, target in config.get("version_aliases", {}).items():
        versions.setdefault(alias, versions[target])
    return versions


def newest_version(family: Family) -> str:
    """The version sagemaker-core's map calls `latest` (else the highest it lists)."""
    from sagemaker.core import image_uris

    config = image_uris.config_for_framework(family.framework)
    config = config.get(family.scope, config)
    latest = config.get("version_aliases", {}).get("latest")
    return latest or max(config["versions"], key=lambda v: tuple(int(p) for p in v.split(".")))


def training_release(cfg: Config) -> Release:
    """The image line and version the training jobs run: the configured `framework_version`, or
    the newest AL2023 image; a version only the Ubuntu map lists comes from that map."""
    version = cfg.training.framework_version or newest_version(PYTORCH_AL2023)
    family = PYTORCH_AL2023 if version in _versions(PYTORCH_AL2023) else PYTORCH_TRAINING
    return Release(family, version)


def training_image(cfg: Config, region: str, instance_type: str) -> str:
    """The PyTorch training image for `instance_type` (CPU or GPU build), unless overridden."""
    if cfg.training_image:
        return cfg.training_image
    release = training_release(cfg)
    return _retrieve(
        "PyTorch training",
        framework=release.family.framework,
        region=region,
        version=release.version,
        # The AL2023 map has one Python per image and no py_version tag.
        **({"py_version": cfg.training.py_version} if cfg.training.py_version and release.family == PYTORCH_TRAINING else {}),
        instance_type=instance_type,
        image_scope=release.family.scope,
    )


def inference_release(cfg: Config) -> Release:
    """The serving container's image line and version: AWS's Ray Serve container (the newest
    numbered version in sagemaker-core's map unless pinned), or with endpoint.container 'torchserve'
    the PyTorch inference image (2.6 unless pinned)."""
    version = cfg.endpoint.inference_framework_version
    if cfg.endpoint.container == "torchserve":
        return Release(PYTORCH_INFERENCE, version or LAST_TORCHSERVE_VERSION)
    numbered = [v for v in _versions(RAY_SERVE) if v[0].isdigit()]
    return Release(RAY_SERVE, version or max(numbered, key=lambda v: tuple(int(p) for p in v.split("."))))


def serving_python(cfg: Config) -> str:
    """The serving image's Python (X.Y), from SUPPORT: the trainer ships ONNX Runtime's wheel for it
    in the model dir (training/optimize.py). A version not on record (synth warns about it) takes
    its line's newest recorded Python."""
    release = inference_release(cfg)
    if release.support is not None:
        return release.support.python
    recorded = SUPPORT[release.family]
    return recorded[max(recorded, key=lambda v: tuple(int(p) for p in v.split(".")))].python


def inference_image(cfg: Config, region: str) -> str:
    """The serving container's image: CPU for serverless, per instance type for real-time."""
    if cfg.inference_image:
        return cfg.inference_image
    release = inference_release(cfg)
    instance_type = _CPU_INSTANCE if cfg.endpoint.mode == "serverless" else cfg.endpoint.instance_type
    return _retrieve(
        f"{release.family.framework} inference",
        framework=release.family.framework,
        region=region,
        version=release.version,
        # Only the Ubuntu-based PyTorch images have a Python tag.
        **({"py_version": cfg.training.py_version} if cfg.training.py_version and release.family == PYTORCH_INFERENCE else {}),
        instance_type=instance_type,
        image_scope=INFERENCE,
    )


def rule_evaluator_image(region: str) -> str:
    """SageMaker Debugger's built-in rule container (debugger and profiler rules alike)."""
    return _retrieve("SageMaker Debugger rule-evaluator", framework="debugger", region=region)


@lru_cache(maxsize=64)
def release_of(uri: str, region: str) -> Release | None:
    """Which AWS image line and version `uri` is, or None for an image sagemaker-core does not map
    among SUPPORT's families (a private image, the rule evaluator). Only versions whose repository
    and tag prefix fit are resolved, CPU and GPU, each Python tag, to find the one that gives `uri`."""
    repository, _, tag = uri.rpartition("/")[2].partition(":")
    for family in SUPPORT:
        for version, entry in _versions(family).items():
            if entry.get("repository") != repository or not tag.startswith(f"{entry.get('tag_prefix', version)}-"):
                continue
            for instance_type in (_CPU_INSTANCE, _GPU_INSTANCE):
                for py_version in entry.get("py_versions") or [None]:
                    kwargs = {"py_version": py_version} if py_version else {}
                    try:
                        found = _cached_retrieve(tuple(sorted(dict(
                            framework=family.framework, region=region, version=version,
                            instance_type=instance_type, image_scope=family.scope, **kwargs).items())))
                    except ValueError:  # not published in this region
                        continue
                    if found == uri:
                        return Release(family, version)
    return None


def end_of_patch_warnings(uris: Iterable[str], region: str, today: date | None = None) -> list[str]:
    """One warning per AWS image in `uris` that is past its end of patch or has none on record."""
    today = today or datetime.now(timezone.utc).date()
    warnings = []
    for uri in sorted(uris):
        release = release_of(uri, region)
        if release is None:
            continue
        support = release.support
        if support is None:
            warnings.append(f"{uri} ({release}) has no end-of-patch date on record in infra/images.py SUPPORT; "
                            "check AWS's DLC support policy and add it")
        elif not support.patched_on(today):
            warnings.append(f"{uri} ({release}) is past its end of patch ({support.end_of_patch.isoformat()}): "
                            "AWS no longer ships security fixes for it; pick a supported version in the config")
    return warnings
