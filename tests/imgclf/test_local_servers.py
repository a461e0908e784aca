"""The local endpoint and front door over real HTTP on 127.0.0.1, in front of the session's Ray Serve
container (tests/conftest.py), and the local gateway's own answers (limits, timeouts, bad Lambda
responses, bad request framing)."""
from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import sys
import tarfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from local_http import request_json  # noqa: E402
from model_dirs import CLASSES  # noqa: E402

from imgclf.errors import UserError  # noqa: E402
from imgclf.local.endpoint import MAX_INVOKE_BYTES, EndpointServer, model_dir_from  # noqa: E402
from imgclf.local.frontdoor import (  # noqa: E402
    API_MAX_PAYLOAD_BYTES,
    LAMBDA_MAX_EVENT_BYTES,
    FrontDoorProcess,
    FrontDoorServer,
    http_answer,
    proxy_event,
)
from imgclf_serving.frontdoor.content_types import BINARY_MEDIA_TYPES  # noqa: E402

NAME = "imgclf-endpoint"


def jpeg_bytes(color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), color).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def endpoint(model_container):
    with EndpointServer(model_container, NAME) as server:
        yield server


@pytest.fixture(scope="module")
def front_door(endpoint, tmp_path_factory):
    with FrontDoorProcess(endpoint.url, NAME, tmp_path_factory.mktemp("fd") / "frontdoor.log") as door:
        yield door


def runtime(endpoint):
    return boto3.client("sagemaker-runtime", endpoint_url=endpoint.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


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
        assert (answer.status, answer.read()) == (200, b"")  # the Ray Serve container's adapter: an empty 200
    status, result = request_json(f"{endpoint.url}/invocations", jpeg_bytes(), "image/jpeg")
    assert status == 200 and result["top_k"] == 3


def test_the_front_door_returns_the_top_k_json_for_an_image(front_door):
    status, result = request_json(f"{front_door.url}/predict", jpeg_bytes(), "image/jpeg")
    assert status == 200
    assert [p["label"] in CLASSES for p in result["predictions"]] == [True] * 3
    assert result["request_id"]


def test_the_front_door_passes_the_lambdas_error_json_through(front_door):
    status, result = request_json(f"{front_door.url}/predict", b"hello", "text/plain")
    assert status == 415 and set(result["error"]) == {"code", "message"}


def test_a_model_error_reaches_the_caller_as_the_apis_error_json(front_door):
    status, result = request_json(f"{front_door.url}/predict", b"\xff\xd8\xff garbage", "image/jpeg")
    assert 400 <= status < 500 and result["error"]["message"]


def test_the_front_door_process_stops_cleanly(endpoint, tmp_path):
    door = FrontDoorProcess(endpoint.url, NAME, tmp_path / "fd.log").start()
    door.stop()
    assert door._proc.returncode == 0


def test_a_front_door_that_cannot_start_says_why_and_where_its_log_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative log path, from a folder that is not the project's
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        door = FrontDoorProcess("http://127.0.0.1:9", NAME, Path("serve") / "fd.log", port=taken.getsockname()[1])
        with pytest.raises(UserError) as caught:
            door.start()
    message = str(caught.value)
    assert "the local front door exited with code 1" in message and "Address already in use" in message
    assert str(tmp_path / "serve" / "fd.log") in message


def test_a_model_tar_is_extracted_like_the_container_extracts_model_data(model_dir, tmp_path):
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        for item in model_dir.iterdir():
            tar.add(item, arcname=item.name)
    extracted = model_dir_from(tmp_path / "model.tar.gz", tmp_path / "x")
    for name in ("config.yaml", "deployment.py", "model.pth", "code/inference.py", "code/requirements.txt"):
        assert (extracted / name).is_file(), name


def sagemaker(endpoint):
    return boto3.client("sagemaker", endpoint_url=endpoint.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def test_health_through_the_front_door_reports_the_local_endpoint_in_service(front_door):
    status, result = request_json(f"{front_door.url}/health")
    assert (status, result["endpoint"], result["status"]) == (200, NAME, "InService")


def test_describe_endpoint_answers_in_the_sagemaker_api_shape(endpoint):
    answer = sagemaker(endpoint).describe_endpoint(EndpointName=NAME)
    model = botocore.session.get_session().get_service_model("sagemaker")
    assert set(model.operation_model("DescribeEndpoint").output_shape.required_members) <= set(answer)
    assert (answer["EndpointStatus"], answer["EndpointConfigName"]) == ("InService", NAME)
    assert answer["EndpointArn"] == f"arn:aws:sagemaker:us-east-1:000000000000:endpoint/{NAME}"
    assert answer["CreationTime"] == answer["LastModifiedTime"] and answer["CreationTime"].year >= 2024


def test_describe_endpoint_of_another_name_is_a_validation_exception(endpoint):
    with pytest.raises(ClientError) as caught:
        sagemaker(endpoint).describe_endpoint(EndpointName="other")
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException" and "Could not find endpoint" in error["Message"]


def test_concurrent_invocations_are_all_counted(endpoint):
    before = endpoint.calls
    with ThreadPoolExecutor(8) as threads:
        answers = list(threads.map(lambda _: request_json(f"{endpoint.url}/invocations", jpeg_bytes()), range(16)))
    statuses = [status for status, _ in answers]
    assert statuses == [200] * 16 and endpoint.calls == before + 16


@pytest.fixture
def gateways():
    """`make(handler, timeout)`: a local gateway over a stand-in Lambda handler, shut down after the test."""
    made = []

    def make(handler=lambda event, context: {"statusCode": 200, "body": "{}"}, timeout: float = 29.0):
        made.append(FrontDoorServer(handler, BINARY_MEDIA_TYPES, timeout_seconds=timeout))
        threading.Thread(target=made[-1].serve_forever, daemon=True).start()
        return made[-1]

    yield make
    for server in made:
        server.shutdown()


def event(body: bytes = b"\xff\xd8\xff") -> dict:
    return proxy_event("POST", "/predict", [("Content-Type", "image/jpeg")], body, BINARY_MEDIA_TYPES)


def gateway_answer(answer) -> tuple[int, dict, dict]:
    status, headers, body = answer
    return status, dict(headers), json.loads(body)


def assert_gateway_error(answer, status: int, code: str, request_id: str) -> None:
    """The shape of the API's errors (the stack's gateway responses use the same)."""
    got_status, headers, body = gateway_answer(answer)
    assert (got_status, body["error"]["code"], body["request_id"]) == (status, code, request_id)
    assert body["error"]["message"] and headers["X-Request-Id"] == request_id


def test_an_event_over_lambdas_6_mb_limit_is_413_and_never_invokes_the_lambda(gateways):
    calls = []
    gateway = gateways(lambda event, context: calls.append(event))
    big = event(b"\0" * (LAMBDA_MAX_EVENT_BYTES * 3 // 4 + 1))  # base64 makes it just over 6 MB
    assert_gateway_error(gateway.invoke(big), 413, "payload_too_large", big["requestContext"]["requestId"])
    assert calls == []


@pytest.mark.parametrize("response", ["not a dict", {"body": "{}"}, {"statusCode": "200", "body": "{}"}],
                         ids=["string", "no_status", "status_as_text"])
def test_a_malformed_lambda_response_is_502_bad_gateway(gateways, response):
    sent = event()
    assert_gateway_error(gateways(lambda e, c: response).invoke(sent), 502, "bad_gateway",
                         sent["requestContext"]["requestId"])


def test_an_unhandled_lambda_error_is_502_bad_gateway_without_its_detail(gateways):
    def crashes(event, context):
        raise RuntimeError("secret detail")

    sent = event()
    answer = gateways(crashes).invoke(sent)
    assert_gateway_error(answer, 502, "bad_gateway", sent["requestContext"]["requestId"])
    assert b"secret detail" not in answer[2]


def test_a_lambda_over_the_integration_timeout_is_504_gateway_timeout(gateways):
    release = threading.Event()
    gateway = gateways(lambda e, c: release.wait(10) and {"statusCode": 200, "body": "{}"}, timeout=0.3)
    sent = event()
    started = time.monotonic()
    try:
        assert_gateway_error(gateway.invoke(sent), 504, "gateway_timeout", sent["requestContext"]["requestId"])
        assert time.monotonic() - started < 2
    finally:
        release.set()


def test_time_queued_for_the_one_lambda_instance_does_not_count_toward_the_timeout(gateways):
    def takes_most_of_the_timeout(event, context):
        time.sleep(0.6)
        return {"statusCode": 200, "body": "{}"}

    gateway = gateways(takes_most_of_the_timeout, timeout=1.0)
    with ThreadPoolExecutor(2) as callers:  # the second waits 0.6 s in line, then runs 0.6 s
        statuses = [answer[0] for answer in callers.map(gateway.invoke, [event(), event()])]
    assert statuses == [200, 200]


def test_a_request_still_queued_at_the_timeout_is_504_and_never_runs(gateways):
    ran, release = [], threading.Event()

    def records(event, context):
        ran.append(event["requestContext"]["requestId"])
        release.wait(10)
        return {"statusCode": 200, "body": "{}"}

    gateway = gateways(records, timeout=0.3)
    first, queued, after = event(), event(), event()
    with ThreadPoolExecutor(1) as caller:
        busy = caller.submit(gateway.invoke, first)
        while not ran:
            time.sleep(0.01)
        assert_gateway_error(gateway.invoke(queued), 504, "gateway_timeout", queued["requestContext"]["requestId"])
        release.set()
        busy.result(timeout=10)
    assert gateway.invoke(after)[0] == 200  # runs after anything still queued before it
    assert ran == [first["requestContext"]["requestId"], after["requestContext"]["requestId"]]


def test_a_lambda_proxy_response_becomes_http_with_its_binary_body_and_every_header():
    response = {"statusCode": 201, "headers": {"A": "1"}, "multiValueHeaders": {"A": ["1", "2"], "B": ["3"]},
                "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
    assert http_answer(response, "rid") == (201, [("A", "1"), ("A", "2"), ("B", "3")], b"\x00\xff")


def raw_post(url: str, path: str, framing: str) -> tuple[int, dict, dict]:
    """Headers written as bytes (http.client would fix the framing) and no body; answered within 10 s."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\n{framing}\r\n".encode())
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, dict(answer.getheaders()), json.loads(answer.read())


FRAMING_CODES = {400: "invalid_request", 411: "length_required", 413: "payload_too_large"}


@pytest.mark.parametrize("server", ["endpoint", "gateway"])
@pytest.mark.parametrize(
    "framing, status",
    [
        ("Content-Length: ten\r\n", 400),
        ("Content-Length: -1\r\n", 400),  # rfile.read(-1) would wait for the end of the stream
        ("Content-Length: 5\r\nContent-Length: 6\r\n", 400),
        ("Transfer-Encoding: chunked\r\n", 411),
        ("Content-Length: {over_limit}\r\n", 413),  # refused from the header: the body is never sent
    ],
    ids=["not_a_number", "negative", "two_lengths", "chunked", "over_limit"],
)
def test_a_badly_framed_request_is_refused_before_its_body_is_read(endpoint, gateways, server, framing, status):
    if server == "endpoint":
        url, path, limit = endpoint.url, f"/endpoints/{NAME}/invocations", MAX_INVOKE_BYTES
    else:
        url, path, limit = gateways().url, "/predict", API_MAX_PAYLOAD_BYTES
    got_status, headers, body = raw_post(url, path, framing.format(over_limit=limit + 1))
    assert got_status == status
    if server == "endpoint":  # as SageMaker's runtime API answers, which botocore parses
        assert headers["x-amzn-ErrorType"] == "ValidationError:" and body["Message"]
    else:
        assert body["error"]["code"] == FRAMING_CODES[status] and body["request_id"] == headers["X-Request-Id"]


@pytest.mark.parametrize(("method", "path", "headers", "status", "code"), [
    ("GET", "/predict", {}, 403, "missing_authentication"),
    ("POST", "/elsewhere", {"Content-Type": "image/jpeg"}, 403, "missing_authentication"),
    ("POST", "/predict", {}, 415, "unsupported_media_type"),
], ids=["wrong_method", "unknown_path", "no_content_type"])
def test_the_gateway_refuses_what_the_rest_api_refuses_before_the_lambda(front_door, method, path, headers, status, code):
    connection = http.client.HTTPConnection("127.0.0.1", int(front_door.url.rsplit(":", 1)[1]), timeout=30)
    connection.request(method, path, body=jpeg_bytes() if method == "POST" else None, headers=headers)
    answer = connection.getresponse()
    body = json.loads(answer.read())
    assert (answer.status, body["error"]["code"]) == (status, code)
    assert body["error"]["message"] and body["request_id"] == answer.getheader("X-Request-Id")
