"""Image URI resolution from sagemaker-core's offline region map, and the end-of-patch policy."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from importlib import resources
from pathlib import Path

import pytest

from infra.config import load_config
from infra.images import (
    PYTORCH_AL2023,
    PYTORCH_TRAINING,
    RAY_SERVE,
    SUPPORT,
    ImageError,
    end_of_patch_warnings,
    inference_image,
    inference_release,
    release_of,
    rule_evaluator_image,
    training_image,
    training_release,
)
from infra.pipeline import image_uris

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def _today() -> date:
    return datetime.now(timezone.utc).date()


def _al2023_map() -> dict:
    """sagemaker-core's own file, read here without its code."""
    text = resources.files("sagemaker.core").joinpath("image_uri_config", "pytorch-amzn2023.json").read_text()
    return json.loads(text)["training"]


# ----- training image -----

def test_a_gpu_instance_gets_the_cuda_build_of_the_al2023_training_image():
    image = training_image(load_config(), REGION, "ml.g4dn.xlarge")
    assert image == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch:2.14-cu133-amzn2023-sagemaker"


def test_a_cpu_instance_gets_the_cpu_build_of_the_al2023_training_image():
    image = training_image(load_config(), "eu-west-1", "ml.m5.xlarge")
    assert image == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch:2.14-cpu-amzn2023-sagemaker"


def test_the_default_training_version_is_the_newest_in_sagemaker_cores_al2023_map():
    newest = max(_al2023_map()["versions"], key=lambda v: tuple(map(int, v.split("."))))
    assert training_release(load_config()) == (PYTORCH_AL2023, newest)


def test_a_pinned_al2023_version_gets_that_image():
    cfg = load_config({"training": {"framework_version": "2.12"}})
    assert training_image(cfg, REGION, "ml.m5.large").endswith("/pytorch:2.12-cpu-amzn2023-sagemaker")


def test_a_version_only_the_ubuntu_map_lists_gets_the_pytorch_training_image_with_its_own_python():
    cfg = load_config({"training": {"framework_version": "2.10"}})
    assert training_release(cfg) == (PYTORCH_TRAINING, "2.10")
    assert training_image(cfg, REGION, "ml.g4dn.xlarge").endswith("/pytorch-training:2.10-gpu-py313")


def test_a_pinned_python_picks_the_ubuntu_image_tag():
    cfg = load_config({"training": {"framework_version": "2.6", "py_version": "py312"}})
    assert training_image(cfg, REGION, "ml.g4dn.xlarge").endswith("/pytorch-training:2.6-gpu-py312")


def test_a_python_the_image_does_not_have_is_a_clear_error():
    cfg = load_config({"training": {"framework_version": "2.10", "py_version": "py312"}})
    with pytest.raises(ImageError, match="py_version=py312.*Supported Python version.*py313"):
        training_image(cfg, REGION, "ml.g4dn.xlarge")


def test_configured_images_override_the_resolved_ones():
    cfg = load_config({"training_image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/train:1",
                       "inference_image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/serve:1"})
    assert training_image(cfg, REGION, "ml.g4dn.xlarge") == "111122223333.dkr.ecr.us-east-1.amazonaws.com/train:1"
    assert inference_image(cfg, REGION) == "111122223333.dkr.ecr.us-east-1.amazonaws.com/serve:1"


def test_an_unsupported_region_is_a_clear_error():
    with pytest.raises(ImageError, match="region=mars-east-1.*Unsupported region"):
        training_image(load_config(), "mars-east-1", "ml.g4dn.xlarge")


def test_an_unpublished_framework_version_is_a_clear_error():
    cfg = load_config({"training": {"framework_version": "0.9"}})
    with pytest.raises(ImageError, match="no PyTorch training image for .*version=0.9"):
        training_image(cfg, REGION, "ml.g4dn.xlarge")


# ----- inference and rule images -----

def _ray_serve_map() -> dict:
    text = resources.files("sagemaker.core").joinpath("image_uri_config", "ray-serve.json").read_text()
    return json.loads(text)


def test_the_default_endpoint_serves_on_the_newest_ray_serve_container_in_sagemaker_cores_map():
    newest = max(_ray_serve_map()["versions"], key=lambda v: tuple(map(int, v.split("."))))
    assert inference_release(load_config()) == (RAY_SERVE, newest)
    assert inference_image(load_config(), REGION) == (
        f"763104351884.dkr.ecr.us-east-1.amazonaws.com/ray:serve-ml-sagemaker-cpu-v{newest}")


def test_serverless_gets_the_cpu_ray_serve_image_even_with_a_gpu_instance_type_configured():
    cfg = load_config({"endpoint": {"mode": "serverless", "instance_type": "ml.g5.xlarge"}})
    assert inference_image(cfg, REGION).endswith("/ray:serve-ml-sagemaker-cpu-v1.4")


def test_a_realtime_gpu_endpoint_gets_the_cuda_ray_serve_image():
    cfg = load_config({"endpoint": {"mode": "realtime", "instance_type": "ml.g5.xlarge"}})
    assert inference_image(cfg, REGION).endswith("/ray:serve-ml-sagemaker-cuda-v1.4")


def test_a_pinned_ray_serve_version_gets_that_tag():
    cfg = load_config({"endpoint": {"inference_framework_version": "1"}})
    assert inference_image(cfg, "eu-west-1") == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/ray:serve-ml-sagemaker-cpu-v1"


@pytest.mark.parametrize(("mode", "instance", "tag"), [("serverless", "ml.m5.large", "2.6-cpu-py312"),
                                                       ("realtime", "ml.g5.xlarge", "2.6-gpu-py312")])
def test_torchserve_is_an_opt_in_that_gets_the_last_pytorch_inference_image(mode, instance, tag):
    cfg = load_config({"endpoint": {"container": "torchserve", "mode": mode, "instance_type": instance}})
    assert inference_image(cfg, REGION).endswith(f"/pytorch-inference:{tag}")


def test_the_torchserve_image_gets_a_warning_naming_its_end_of_patch():
    uri = inference_image(load_config({"endpoint": {"container": "torchserve"}}), REGION)
    assert end_of_patch_warnings({uri}, REGION, today=date(2026, 6, 30)) == []
    (warning,) = end_of_patch_warnings({uri}, REGION, today=date(2026, 7, 1))
    assert "(pytorch inference 2.6) is past its end of patch (2026-06-30)" in warning


def test_a_ray_serve_version_not_known_to_be_patched_gets_a_warning():
    uri = inference_image(load_config({"endpoint": {"inference_framework_version": "1.3"}}), REGION)
    (warning,) = end_of_patch_warnings({uri}, REGION, today=date(2026, 7, 1))
    assert "ray-serve inference 1.3" in warning and "no end-of-patch date on record" in warning


def test_a_ray_serve_version_sagemaker_core_lacks_is_a_clear_error():
    with pytest.raises(ImageError, match="no ray-serve inference image for .*version=2.6"):
        inference_image(load_config({"endpoint": {"inference_framework_version": "2.6"}}), REGION)


def test_the_rule_evaluator_image_comes_from_the_regions_debugger_account():
    assert rule_evaluator_image(REGION) == (
        "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
    )
    assert rule_evaluator_image("eu-west-1").startswith("929884845733.dkr.ecr.eu-west-1.amazonaws.com/")


def test_a_region_without_debugger_rules_is_a_clear_error():
    with pytest.raises(ImageError, match="Debugger rule-evaluator image for region=ap-south-2"):
        rule_evaluator_image("ap-south-2")


# ----- end of patch -----

def test_the_default_stack_references_only_images_aws_still_patches(default):
    referenced = image_uris(default.definition)
    assert any(release_of(uri, REGION) == (PYTORCH_AL2023, "2.14") for uri in referenced)
    assert any(release_of(uri, REGION) == (RAY_SERVE, "1.4") for uri in referenced)
    unpatched = []
    for uri in sorted(referenced):
        release = release_of(uri, REGION)
        assert release is not None, f"{uri} is no AWS image with an end-of-patch date in infra/images.py"
        support = release.support
        if support is None or not support.patched_on(_today()):
            unpatched.append(f"{uri} ({release}): end of patch {support.end_of_patch if support else 'unknown'}")
    assert not unpatched, "the default stack references unpatched images:\n" + "\n".join(unpatched)


def test_every_al2023_training_version_sagemaker_core_maps_has_an_end_of_patch_date():
    assert set(_al2023_map()["versions"]) <= set(SUPPORT[PYTORCH_AL2023])


def test_an_image_past_its_end_of_patch_gets_a_warning_naming_the_date():
    cfg = load_config({"training": {"framework_version": "2.9"}})
    uri = training_image(cfg, REGION, "ml.g4dn.xlarge")
    assert end_of_patch_warnings({uri}, REGION, today=date(2026, 10, 15)) == []
    (warning,) = end_of_patch_warnings({uri}, REGION, today=date(2026, 10, 16))
    assert warning.startswith(f"{uri} (pytorch training 2.9) is past its end of patch (2026-10-15)")


def test_an_aws_image_without_an_end_of_patch_date_on_record_gets_a_warning(monkeypatch):
    monkeypatch.setitem(SUPPORT, PYTORCH_AL2023, {v: s for v, s in SUPPORT[PYTORCH_AL2023].items() if v != "2.12"})
    uri = training_image(load_config({"training": {"framework_version": "2.12"}}), REGION, "ml.m5.large")
    (warning,) = end_of_patch_warnings({uri}, REGION, today=date(2026, 1, 1))
    assert "no end-of-patch date on record" in warning


def test_private_and_rule_evaluator_images_get_no_end_of_patch_warning():
    uris = {"111122223333.dkr.ecr.us-east-1.amazonaws.com/train:1", rule_evaluator_image(REGION)}
    assert end_of_patch_warnings(uris, REGION, today=date(2099, 1, 1)) == []


def test_synth_warns_about_a_pinned_training_image_past_its_end_of_patch(tmp_path):
    from aws_cdk import App
    from aws_cdk.assertions import Annotations, Match

    from infra.stack import ImgclfStack

    cfg = load_config({"training": {"framework_version": "2.9"}})
    context = json.loads((ROOT / "cdk.json").read_text())["context"]  # the feature flags app.py runs with
    stack = ImgclfStack(App(context=context, outdir=str(tmp_path)), "pinned", cfg=cfg, region=REGION)
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("end of patch"))
    texts = [w.entry.data for w in warnings]
    assert any("pytorch-training:2.9-gpu-py312" in t and "(2026-10-15)" in t for t in texts), texts
