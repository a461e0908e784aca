"""Grad-CAM explanations (`explain=1`): the handlers on a model dir written by the trainer's own
writer, the Ray Serve container through the local endpoint, and the front door's request to
InvokeEndpoint, checked against botocore's model."""
from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys

import pytest
import torch
from botocore.stub import ANY, Stubber
from PIL import Image

import hostile_corpus as corpus
from api_events import LambdaContext, proxy_event
from imgclf_serving import explain, inference, optimized_forward
from imgclf_serving.architecture import build_classifier
from imgclf_serving.frontdoor.error_codes import INVALID_PARAMETER
from model_dirs import CLASSES, REPO_ROOT

EXPLAIN = {inference.CUSTOM_ATTRIBUTES_HEADER: "explain=1"}
#: A serverless endpoint's largest response (InvokeEndpoint on serverless: 4 MB).
SERVERLESS_MAX_RESPONSE_BYTES = 4_000_000


@pytest.fixture(scope="module")
def loaded(model_dir):
    return inference.model_fn(str(model_dir))


def _answer(model, image: Image.Image, headers: dict) -> dict:
    body, _ = inference.output_fn(inference.predict_fn(image, model, headers), "application/json", headers)
    return json.loads(body)


def _photo() -> Image.Image:
    return corpus.photo("chelsea", 64)


def test_an_explained_answer_has_the_top_k_and_a_heatmap_png_of_the_top_class(loaded):
    answer = _answer(loaded, _photo(), {inference.CUSTOM_ATTRIBUTES_HEADER: "top_k=2;explain=1"})
    assert len(answer["predictions"]) == 2
    explanation = answer["explanation"]
    assert explanation["method"] == "grad-cam" and explanation["layer"] == "layer4"
    assert explanation["label"] == answer["predictions"][0]["label"]
    heatmap = Image.open(io.BytesIO(base64.b64decode(explanation["heatmap_png"])))
    assert (heatmap.format, heatmap.mode, heatmap.size) == ("PNG", "RGBA", (32, 32))


def test_the_explained_top_k_are_the_plain_answers_top_k(loaded):
    image = _photo()
    plain, explained = _answer(loaded, image, {}), _answer(loaded, image, EXPLAIN)
    assert "explanation" not in plain
    assert [p["label"] for p in explained["predictions"]] == [p["label"] for p in plain["predictions"]]
    for a, b in zip(explained["predictions"], plain["predictions"], strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_the_box_is_the_centre_crop_the_network_saw():
    # 200x100, at 32 px: short side 100 -> 37 (32*256/224) then a 32 crop: 100*32/37 = 86.5 px of the original
    assert explain.crop_box((200, 100), 32) == (57, 7, 86, 86)
    assert explain.crop_box((224, 224), 224) == (14, 14, 196, 196)


def test_the_heatmap_equals_grad_cam_computed_the_textbook_way(model_dir):
    """The frozen-parameter, leaf-at-the-layer shortcut must give what full backpropagation gives."""
    network = inference.model_fn(str(model_dir)).network
    batch = torch.randn(1, 3, 64, 64)
    stored = {}
    handle = network.layer4.register_forward_hook(lambda _m, _i, out: stored.update(a=out) or out.retain_grad())
    try:
        with torch.enable_grad():
            network.requires_grad_(True)
            logits = network(batch.clone().requires_grad_(True))
            logits[0, logits[0].argmax()].backward()
    finally:
        handle.remove()
    activations, gradients = stored["a"].detach(), stored["a"].grad
    expected = torch.relu((gradients.mean(dim=(2, 3), keepdim=True) * activations).sum(dim=1, keepdim=True))
    expected = torch.nn.functional.interpolate(expected, size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    expected = expected / expected.max()
    got_logits, got = explain.GradCam(network, "resnet50")(batch)
    assert torch.allclose(got_logits, logits.detach(), atol=1e-5)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not any(p.requires_grad for p in network.parameters())  # the shortcut froze them


def test_an_incompressible_heatmap_at_a_large_input_fits_a_serverless_response():
    png = explain.heatmap_png(torch.rand(512, 512))
    assert len(base64.b64encode(png)) < SERVERLESS_MAX_RESPONSE_BYTES // 2


def test_explain_is_refused_with_a_400_when_it_is_not_1_or_0(loaded):
    with pytest.raises(inference.InvalidParameter, match="explain='yes' must be 1 or 0"):
        inference.predict_fn(_photo(), loaded, {inference.CUSTOM_ATTRIBUTES_HEADER: "explain=yes"})


def test_an_optimized_model_explains_with_the_fp32_network_loaded_on_first_use(tmp_path):
    """A ResNet-18 (its ONNX export is the quick one) with the `graph` forward beside its weights."""
    from training import optimize
    from training.model_dir import write_model_dir

    optimized = tmp_path / "model"
    fp32 = build_classifier("resnet18", len(CLASSES))
    write_model_dir(optimized, fp32, list(CLASSES), "resnet18", 32)
    optimize.produce(fp32, "graph", optimized, "resnet18", len(CLASSES), 32, calibration=None)
    meta = json.loads((optimized / inference.META_FILE).read_text())
    (optimized / inference.META_FILE).write_text(json.dumps({**meta, "optimize": "graph"}))
    model = inference.model_fn(str(optimized))
    assert isinstance(model.network, optimized_forward.OnnxForward)
    image = _photo()
    plain, explained = _answer(model, image, {}), _answer(model, image, EXPLAIN)
    assert isinstance(model.grad_cam().network, torch.nn.Module)
    assert explained["explanation"]["label"] == plain["predictions"][0]["label"]
    assert explained["predictions"][0]["score"] == pytest.approx(plain["predictions"][0]["score"], abs=1e-3)


def test_explain_reaches_the_ray_serve_container_through_the_front_door(frontdoor_on_local_endpoint):
    response = frontdoor_on_local_endpoint.handler(
        proxy_event(corpus.jpeg(), "image/jpeg", query={"explain": "1", "top_k": "2"}), LambdaContext())
    body = json.loads(response["body"])
    assert response["statusCode"] == 200 and len(body["predictions"]) == 2
    assert body["explanation"]["label"] == body["predictions"][0]["label"]
    assert Image.open(io.BytesIO(base64.b64decode(body["explanation"]["heatmap_png"]))).format == "PNG"
    assert len(response["body"]) < SERVERLESS_MAX_RESPONSE_BYTES


def test_the_front_door_sends_a_valid_invoke_endpoint_request_with_the_custom_attributes(frontdoor):
    client = frontdoor.runtime_client()
    answer = json.dumps({"model": {"name": "resnet50", "version": "1"}, "top_k": 1,
                         "predictions": [{"label": "cat", "score": 0.9}]}).encode()
    with Stubber(client) as stub:  # the Stubber checks the request against botocore's InvokeEndpoint model
        stub.add_response("invoke_endpoint", {"Body": io.BytesIO(answer), "ContentType": "application/json"},
                          {"EndpointName": "imgclf-test", "Body": ANY, "ContentType": "image/png",
                           "Accept": "application/json", "CustomAttributes": "top_k=1;explain=1"})
        response = frontdoor.handler(proxy_event(corpus.png(), "image/png", query={"explain": "true", "top_k": "1"}),
                                     LambdaContext())
        stub.assert_no_pending_responses()
    assert response["statusCode"] == 200


def test_the_front_door_refuses_a_bad_explain_value_before_calling_the_endpoint(frontdoor):
    with Stubber(frontdoor.runtime_client()):  # no response queued: any call would fail the test
        response = frontdoor.handler(proxy_event(corpus.png(), "image/png", query={"explain": "please"}), LambdaContext())
    body = json.loads(response["body"])
    assert (response["statusCode"], body["error"]["code"]) == (INVALID_PARAMETER.status, INVALID_PARAMETER.code)


def test_the_cost_benchmark_prints_the_ratio_the_answer_size_and_the_import_times():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "explain_cost.py"), "--arch", "resnet18",
                           "--image-size", "32", "--iterations", "1", "--warmup", "0", "--import-rounds", "1",
                           "--imports", "hooks"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^explain/plain = [0-9.]+$", done.stdout, re.M), done.stdout
    assert re.search(r"^  hooks \(imgclf_serving.explain\): [0-9]+ ms \(median of 1\)$", done.stdout, re.M), done.stdout
