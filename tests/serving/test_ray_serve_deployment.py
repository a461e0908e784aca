"""The model dir's deployment.py served by real Ray Serve, started as AWS's Ray Serve container
starts it, and called as that container's adapter calls it (imgclf/local/ray_container.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile_corpus as corpus
from imgclf.errors import UserError
from imgclf.local.ray_container import RayServeContainer
from model_dirs import CLASSES, REPO_ROOT

CASE_NAMES = [case.name for case in corpus.hostile_cases()]
MAGIC_PREFIXES = [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 "]


def refusal(answer) -> str:
    """The message of a refused request; its body is `{"error": message}` and nothing else."""
    assert answer.content_type == "application/json"
    body = json.loads(answer.body)
    assert set(body) == {"error"} and "Traceback" not in body["error"]
    return body["error"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_input_gets_its_documented_status_and_message(model_container, cases, name):
    case = cases[name]
    answer = model_container.invoke(case.body, {"Content-Type": case.content_type})
    assert answer.status == case.status, answer.body[:300]
    if case.status == 200:
        assert json.loads(answer.body)["predictions"][0]["label"] in CLASSES
    else:
        assert case.message in refusal(answer)


def test_success_is_json_with_the_top_3_labels(model_container):
    answer = model_container.invoke(corpus.jpeg(), {"Content-Type": "image/jpeg", "Accept": "application/json"})
    assert (answer.status, answer.content_type) == (200, "application/json")
    result = json.loads(answer.body)
    assert result["top_k"] == 3 and {p["label"] for p in result["predictions"]} == set(CLASSES)
    assert result["model"] == {"name": "resnet50", "version": "test-1"}


def test_the_custom_attributes_header_reaches_the_handlers_per_request(model_container):
    headers = {"Content-Type": "image/png", "X-Amzn-SageMaker-Custom-Attributes": "top_k=2"}
    assert len(json.loads(model_container.invoke(corpus.png(), headers).body)["predictions"]) == 2
    headers.pop("X-Amzn-SageMaker-Custom-Attributes")
    assert len(json.loads(model_container.invoke(corpus.png(), headers).body)["predictions"]) == 3


def test_an_invalid_custom_attribute_is_a_400_naming_it(model_container):
    headers = {"Content-Type": "image/png", "X-Amzn-SageMaker-Custom-Attributes": "top_k=0"}
    answer = model_container.invoke(corpus.png(), headers)
    assert answer.status == 400 and "top_k" in refusal(answer)


def test_accept_other_than_json_is_a_406(model_container):
    answer = model_container.invoke(corpus.jpeg(), {"Content-Type": "image/jpeg", "Accept": "text/html"})
    assert answer.status == 406 and "application/json" in refusal(answer)


def test_ping_answers_from_ray_serves_health_check(model_container):
    assert model_container.ping()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.sampled_from(MAGIC_PREFIXES),
    body=st.binary(max_size=2048),
    content_type=st.sampled_from(["image/jpeg", "image/png", "image/webp", "application/x-image", "application/octet-stream"]),
)
def test_random_bytes_never_get_a_500_or_a_trace(model_container, prefix, body, content_type):
    answer = model_container.invoke(prefix + body, {"Content-Type": content_type})
    assert answer.status in (200, 400, 413, 415), answer.body[:300]
    if answer.status != 200:
        refusal(answer)


@st.composite
def damaged_images(draw):
    """A real image with a few bytes overwritten and maybe cut short: reaches the decoders."""
    body = bytearray(draw(st.sampled_from([corpus.jpeg(), corpus.png(), corpus.palette_gif(), corpus.encode(corpus.photo(), "WEBP")])))
    for _ in range(draw(st.integers(1, 8))):
        body[draw(st.integers(0, len(body) - 1))] = draw(st.integers(0, 255))
    return bytes(body[: draw(st.integers(1, len(body)))])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=damaged_images())
def test_damaged_real_images_never_get_a_500(model_container, body):
    answer = model_container.invoke(body, {"Content-Type": "application/octet-stream"})
    assert answer.status in (200, 400, 413, 415), answer.body[:300]


def test_the_model_dir_carries_the_ray_serve_application_and_no_requirement_to_install(model_dir):
    import yaml

    (application,) = yaml.safe_load((model_dir / "config.yaml").read_text())["applications"]
    assert (application["import_path"], application["route_prefix"]) == ("deployment:build", "/")
    assert (model_dir / "deployment.py").read_bytes() == (REPO_ROOT / "imgclf_serving" / "deployment.py").read_bytes()
    requirements = (model_dir / "code" / "requirements.txt").read_text().splitlines()
    assert [line for line in requirements if line.strip() and not line.lstrip().startswith("#")] == []


def test_the_deployment_answers_without_the_inference_toolkit_which_the_container_lacks(model_dir):
    """The Ray Serve image has no sagemaker-inference: deployment.py and the handlers' typed errors
    must not need it. One replica's class, called as Ray Serve calls it, with the toolkit blocked."""
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        class NoToolkit:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "sagemaker_inference":
                    raise ModuleNotFoundError("no sagemaker_inference in the Ray Serve container")
        sys.meta_path.insert(0, NoToolkit())
        from starlette.requests import Request
        import deployment

        replica = deployment.Classifier.func_or_class({str(model_dir)!r}, batched=False)
        async def call(body, content_type):
            async def receive():
                return {{"type": "http.request", "body": body, "more_body": False}}
            scope = {{"type": "http", "method": "POST", "path": "/", "query_string": b"",
                      "headers": [(b"content-type", content_type.encode())]}}
            answer = await replica(Request(scope, receive))
            return answer.status_code, json.loads(answer.body)
        print(json.dumps([asyncio.run(call(*request)) for request in
                          [({corpus.jpeg()!r}, "image/jpeg"), (b"not an image", "image/jpeg")]]))
        print("toolkit imported:", "sagemaker_inference" in sys.modules)
    """)
    env = {**os.environ, "PYTHONPATH": f"{model_dir}{os.pathsep}{model_dir / 'code'}"}
    done = subprocess.run([sys.executable, "-c", script], cwd=model_dir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answers, toolkit = done.stdout.strip().splitlines()[-2:]
    (ok_status, ok_body), (bad_status, bad_body) = json.loads(answers)
    assert ok_status == 200 and {p["label"] for p in ok_body["predictions"]} == set(CLASSES)
    assert bad_status == 400 and "not a recognised image" in bad_body["error"]
    assert toolkit == "toolkit imported: False"


@pytest.mark.slow
def test_a_model_that_cannot_load_fails_the_start_with_the_missing_file(model_dir, tmp_path):
    broken = tmp_path / "model"
    broken.mkdir()
    for item in model_dir.iterdir():  # deployment.py finds the model beside itself: copied, not linked
        if item.name == "model.pth":
            (broken / item.name).symlink_to(item)
        elif item.name != "classes.json":
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, broken / item.name)
    with pytest.raises(UserError, match=r"cannot load the model in .*: ModelFileError: classes.json is missing"):
        RayServeContainer(broken, {}, tmp_path / "container.log").start()
