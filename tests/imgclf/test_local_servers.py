"""The local endpoint and front door over real HTTP on 127.0.0.1, with the real handlers."""
from __future__ import annotations

import io
import json
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from model_dirs import CLASSES, build_model_dir  # noqa: E402

from imgclf.local.endpoint import EndpointServer, HandlerService, model_dir_from  # noqa: E402
from imgclf.local.frontdoor import FrontDoorProcess  # noqa: E402

NAME = "imgclf-endpoint"


def jpeg_bytes(color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), color).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    service = HandlerService(build_model_dir(tmp_path_factory.mktemp("m") / "model", image_size=32))
    with EndpointServer(service, NAME) as server:
        yield server


@pytest.fixture(scope="module")
def front_door(endpoint, tmp_path_factory):
    with FrontDoorProcess(endpoint.url, NAME, tmp_path_factory.mktemp("fd") / "frontdoor.log") as door:
        yield door


def runtime(endpoint):
    return boto3.client("sagemaker-runtime", endpoint_url=endpoint.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def post(url, body: bytes, content_type: str):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_boto3_invoke_endpoint_gets_the_handlers_top_k(endpoint):
    answer = runtime(endpoint).invoke_endpoint(EndpointName=NAME, Body=jpeg_bytes(), ContentType="image/jpeg")
    result = json.loads(answer["Body"].read())
    assert {p["label"] for p in result["predictions"]} <= set(CLASSES) and len(result["predictions"]) == 3
    assert answer["InvokedProductionVariant"] == "AllTraffic"


def test_a_refused_image_is_a_model_error_carrying_the_containers_status(endpoint):
    with pytest.raises(ClientError) as caught:
        runtime(endpoint).invoke_endpoint(EndpointName=NAME, Body=b"not an image", ContentType="image/jpeg")
    response = caught.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 400 and response["ResponseMetadata"]["HTTPStatusCode"] == 424


def test_an_unknown_endpoint_name_is_a_validation_error(endpoint):
    with pytest.raises(ClientError) as caught:
        runtime(endpoint).invoke_endpoint(EndpointName="other", Body=jpeg_bytes(), ContentType="image/jpeg")
    assert caught.value.response["Error"]["Code"] == "ValidationError"


def test_the_container_contract_answers_ping_and_invocations(endpoint):
    with urllib.request.urlopen(f"{endpoint.url}/ping", timeout=10) as answer:
        assert answer.status == 200
    status, result = post(f"{endpoint.url}/invocations", jpeg_bytes(), "image/jpeg")
    assert status == 200 and result["top_k"] == 3


def test_the_front_door_returns_the_top_k_json_for_an_image(front_door):
    status, result = post(f"{front_door.url}/predict", jpeg_bytes(), "image/jpeg")
    assert status == 200
    assert [p["label"] in CLASSES for p in result["predictions"]] == [True] * 3
    assert result["request_id"]


def test_the_front_door_passes_the_lambdas_error_json_through(front_door):
    status, result = post(f"{front_door.url}/predict", b"hello", "text/plain")
    assert status == 415 and set(result["error"]) == {"code", "message"}


def test_a_model_error_reaches_the_caller_as_the_apis_error_json(front_door):
    status, result = post(f"{front_door.url}/predict", b"\xff\xd8\xff garbage", "image/jpeg")
    assert 400 <= status < 500 and result["error"]["message"]


def test_the_front_door_process_stops_cleanly(endpoint, tmp_path):
    door = FrontDoorProcess(endpoint.url, NAME, tmp_path / "fd.log").start()
    door.stop()
    assert door._proc.returncode == 0


def test_a_model_tar_is_extracted_like_the_container_extracts_model_data(tmp_path):
    model_dir = build_model_dir(tmp_path / "model", image_size=32)
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        for item in model_dir.iterdir():
            tar.add(item, arcname=item.name)
    extracted = model_dir_from(tmp_path / "model.tar.gz", tmp_path / "x")
    assert (extracted / "code" / "inference.py").is_file() and (extracted / "model.pth").is_file()
