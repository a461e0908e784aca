"""The serving image's Python reaches the retrain as `serving-python` (from infra/images.py SUPPORT,
the one table), so the trainer ships ONNX Runtime's wheel for it; a local job replaces it with this
machine's, where the local containers serve."""
from __future__ import annotations

import json
import sys

import pytest
from sample_locations import LOC

from imgclf.local.jobs import JobSpec, LocalTrainingJob
from infra import images
from infra.config import load_config
from infra.hyperparameters import decode
from infra.sagemaker_requests import static_hyperparameters, training_job_request


def _newest(family: images.Family) -> str:
    return max(images.SUPPORT[family], key=lambda v: tuple(int(p) for p in v.split(".")))


@pytest.mark.parametrize("endpoint, family, version", [
    ({}, images.RAY_SERVE, None),
    ({"container": "torchserve"}, images.PYTORCH_INFERENCE, images.LAST_TORCHSERVE_VERSION),
    ({"inference_framework_version": "1.3"}, images.RAY_SERVE, None),  # not on record: its line's newest
], ids=["ray-serve-default", "torchserve", "ray-serve-1.3"])
def test_the_retrain_gets_the_serving_images_python(endpoint, family, version):
    cfg = load_config({"endpoint": endpoint})
    hp = training_job_request(cfg, LOC, "j1", {})["HyperParameters"]
    assert decode(hp["serving-python"]) == images.SUPPORT[family][version or _newest(family)].python
    assert decode(hp["optimize"]) == "int8"


def test_a_fp32_endpoint_gets_no_serving_python():
    assert "serving-python" not in static_hyperparameters(load_config({"endpoint": {"optimize": "none"}}), LOC)


def test_a_local_job_ships_the_runtime_for_the_python_its_containers_serve_on(tmp_path):
    hp = training_job_request(load_config({}), LOC, "j1", {})["HyperParameters"]
    spec = JobSpec(name="j1", hyperparameters=hp, metric_definitions=[], channels={}, instance_type="ml.m5.large",
                   max_runtime_seconds=60)
    LocalTrainingJob(spec, tmp_path / "job").prepare()
    written = json.loads((tmp_path / "job" / "input" / "config" / "hyperparameters.json").read_text())
    assert decode(written["serving-python"]) == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert {k: v for k, v in written.items() if k != "serving-python"} == {
        k: v for k, v in hp.items() if k != "serving-python"}
