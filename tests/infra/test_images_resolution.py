"""Image URI resolution from sagemaker-core's offline region map."""
from __future__ import annotations

import pytest

from infra.config import load_config
from infra.images import ImageError, inference_image, rule_evaluator_image, training_image


def test_a_gpu_instance_gets_the_gpu_training_image():
    image = training_image(load_config(), "us-east-1", "ml.g4dn.xlarge")
    assert image == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6-gpu-py312"


def test_a_cpu_instance_gets_the_cpu_training_image():
    assert training_image(load_config(), "eu-west-1", "ml.m5.xlarge").endswith("/pytorch-training:2.6-cpu-py312")


def test_serverless_gets_the_cpu_inference_image_even_with_a_gpu_instance_type_configured():
    cfg = load_config({"endpoint": {"mode": "serverless", "instance_type": "ml.g5.xlarge"}})
    assert inference_image(cfg, "us-east-1").endswith("/pytorch-inference:2.6-cpu-py312")


def test_a_realtime_gpu_endpoint_gets_the_gpu_inference_image():
    cfg = load_config({"endpoint": {"mode": "realtime", "instance_type": "ml.g5.xlarge"}})
    assert inference_image(cfg, "us-east-1").endswith("/pytorch-inference:2.6-gpu-py312")


def test_configured_images_override_the_resolved_ones():
    cfg = load_config({"training_image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/train:1",
                       "inference_image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/serve:1"})
    assert training_image(cfg, "us-east-1", "ml.g4dn.xlarge") == "111122223333.dkr.ecr.us-east-1.amazonaws.com/train:1"
    assert inference_image(cfg, "us-east-1") == "111122223333.dkr.ecr.us-east-1.amazonaws.com/serve:1"


def test_the_rule_evaluator_image_comes_from_the_regions_debugger_account():
    assert rule_evaluator_image("us-east-1") == (
        "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
    )
    assert rule_evaluator_image("eu-west-1").startswith("929884845733.dkr.ecr.eu-west-1.amazonaws.com/")


def test_an_unsupported_region_is_a_clear_error():
    with pytest.raises(ImageError, match="region=mars-east-1.*Unsupported region"):
        training_image(load_config(), "mars-east-1", "ml.g4dn.xlarge")


def test_an_unpublished_framework_version_is_a_clear_error():
    cfg = load_config({"training": {"framework_version": "0.9"}})
    with pytest.raises(ImageError, match="no PyTorch training image for .*version=0.9"):
        training_image(cfg, "us-east-1", "ml.g4dn.xlarge")


def test_a_region_without_debugger_rules_is_a_clear_error():
    with pytest.raises(ImageError, match="Debugger rule-evaluator image for region=ap-south-2"):
        rule_evaluator_image("ap-south-2")
