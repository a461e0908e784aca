"""The model dir served by the PyTorch inference container's own stack, endpoint.container
'torchserve': TorchServe 0.12 with sagemaker-pytorch-inference 2.0.25 (from .venv-torchserve, built
by `make`), on 127.0.0.1 (imgclf/local/torchserve_container.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import hostile_corpus as corpus
from imgclf.local.torchserve_container import PYTHON, TorchServeContainer
from model_dirs import CLASSES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torchserve(model_dir, tmp_path_factory):
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} is missing: build it with `make .venv-torchserve/.stamp`")
    environment = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "60"}
    with TorchServeContainer(model_dir, environment, tmp_path_factory.mktemp("torchserve") / "torchserve.log") as server:
        yield server


def test_the_container_stack_uses_its_own_toolkit_copy_not_the_main_venvs():
    probe = "import sagemaker_inference, torch; print(sagemaker_inference.__file__); print(torch.__file__)"
    toolkit, torch_file = subprocess.run(
        [str(PYTHON), "-c", probe], check=True, capture_output=True, text=True, timeout=120
    ).stdout.split()
    assert ".venv-torchserve" in toolkit
    assert Path(sys.prefix) in Path(torch_file).parents  # torch is shared with the main venv


def test_jpeg_posted_to_invocations_gets_json_top_k(torchserve):
    answer = torchserve.invoke(corpus.jpeg(), {"Content-Type": "image/jpeg", "Accept": "application/json"})
    assert answer.status == 200
    result = json.loads(answer.body)
    assert result["top_k"] == 3 and {p["label"] for p in result["predictions"]} == set(CLASSES)


def test_custom_attributes_header_reaches_the_handlers(torchserve):
    answer = torchserve.invoke(corpus.png(), {"Content-Type": "image/png", "X-Amzn-SageMaker-Custom-Attributes": "top_k=1"})
    assert (answer.status, len(json.loads(answer.body)["predictions"])) == (200, 1)


def test_explain_reaches_predict_fn_through_the_toolkits_request_context(torchserve):
    headers = {"Content-Type": "image/png", "X-Amzn-SageMaker-Custom-Attributes": "top_k=2;explain=1"}
    result = json.loads(torchserve.invoke(corpus.png(), headers).body)
    assert result["explanation"]["label"] == result["predictions"][0]["label"] and len(result["predictions"]) == 2
    plain = json.loads(torchserve.invoke(corpus.png(), {"Content-Type": "image/png"}).body)
    assert "explanation" not in plain  # the toolkit hands each request its own headers


@pytest.mark.parametrize("name", [case.name for case in corpus.hostile_cases()])
def test_hostile_input_gets_its_documented_status_from_the_container(torchserve, cases, name):
    case = cases[name]
    answer = torchserve.invoke(case.body, {"Content-Type": case.content_type})
    assert answer.status == case.status, answer.body[:500]
    if answer.status != 200 and name != "body_7mb":  # TorchServe itself refuses >6.5 MB, with its own text
        assert case.message in answer.body.decode("utf-8", "replace").splitlines()[0]
