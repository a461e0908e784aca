"""The Lambda front door with sagemaker-runtime stubbed (botocore Stubber): request checks,
the InvokeEndpoint call it makes, and how endpoint failures are answered."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.config import Config
from botocore.response import StreamingBody
from botocore.stub import Stubber

import hostile_corpus as corpus
from api_events import LambdaContext, proxy_event
from model_dirs import SERVING_DIR

ENDPOINT_ANSWER = {"model": {"name": "resnet50", "version": "test-1"}, "top_k": 1, "predictions": [{"label": "cat", "score": 0.9}]}


def call(app, event):
    response = app.handler(event, LambdaContext())
    headers = {key: values[0] for key, values in response["multiValueHeaders"].items()}
    return response["statusCode"], json.loads(response["body"]), headers


def endpoint_answer(payload=ENDPOINT_ANSWER):
    body = json.dumps(payload).encode()
    return {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"}


@pytest.fixture
def log_lines(frontdoor, monkeypatch):
    """The front door's structured log lines (Powertools binds its handler to stdout at import)."""
    buffer = io.StringIO()
    monkeypatch.setattr(frontdoor.logger.registered_handler, "stream", buffer)
    return lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.fixture
def runtime(frontdoor):
    with Stubber(frontdoor.runtime_client()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def expect_invoke(runtime, body, content_type, **extra):
    params = {"EndpointName": "imgclf-test", "Body": body, "ContentType": content_type, "Accept": "application/json", **extra}
    runtime.add_response("invoke_endpoint", endpoint_answer(), params)


def model_error(runtime, status, message):
    runtime.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message=f'Received client error ({status}) from primary with message "{message}".',
        http_status_code=424,
        modeled_fields={"OriginalStatusCode": status, "OriginalMessage": message},
    )


def test_binary_jpeg_is_decoded_and_sent_with_its_content_type(frontdoor, runtime):
    expect_invoke(runtime, corpus.jpeg(), "image/jpeg")
    status, body, _ = call(frontdoor, proxy_event(corpus.jpeg(), "image/jpeg"))
    assert status == 200
    assert body["predictions"] == ENDPOINT_ANSWER["predictions"]


def test_binary_png_is_decoded_and_sent_with_its_content_type(frontdoor, runtime):
    expect_invoke(runtime, corpus.png(), "image/png")
    assert call(frontdoor, proxy_event(corpus.png(), "image/png; charset=binary"))[0] == 200


def test_top_k_query_parameter_becomes_the_custom_attribute(frontdoor, runtime):
    expect_invoke(runtime, corpus.jpeg(), "image/jpeg", CustomAttributes="top_k=5")
    assert call(frontdoor, proxy_event(corpus.jpeg(), query={"top_k": "5"}))[0] == 200


def test_top_k_env_var_is_the_default_custom_attribute(frontdoor, runtime, monkeypatch):
    monkeypatch.setenv("TOP_K", "4")
    expect_invoke(runtime, corpus.jpeg(), "image/jpeg", CustomAttributes="top_k=4")
    assert call(frontdoor, proxy_event(corpus.jpeg()))[0] == 200


def test_warm_invocations_reuse_one_client(frontdoor, runtime):
    for _ in range(2):  # both calls are answered by the stub on the one cached client
        expect_invoke(runtime, corpus.jpeg(), "image/jpeg")
        assert call(frontdoor, proxy_event(corpus.jpeg()))[0] == 200


def test_request_id_is_in_the_body_and_header_of_every_answer(frontdoor, runtime):
    expect_invoke(runtime, corpus.jpeg(), "image/jpeg")
    for event in (proxy_event(corpus.jpeg()), proxy_event(b"", "text/plain")):
        _, body, headers = call(frontdoor, event)
        request_id = event["requestContext"]["requestId"]
        assert body["request_id"] == request_id
        assert headers["X-Request-Id"] == request_id


@pytest.mark.parametrize(
    "event, status, code",
    [
        (proxy_event(None), 400, "empty_body"),
        (proxy_event(b""), 400, "empty_body"),
        (proxy_event(corpus.jpeg(), None), 415, "unsupported_media_type"),
        (proxy_event(corpus.jpeg(), "application/json"), 415, "unsupported_media_type"),
        (proxy_event(corpus.random_bytes(512), base64_encoded=False), 400, "invalid_body"),
        (proxy_event("not base64!", base64_encoded=True), 400, "invalid_body"),
        (proxy_event(corpus.jpeg(), query={"top_k": "0"}), 400, "invalid_parameter"),
        (proxy_event(corpus.jpeg(), query={"top_k": "ten"}), 400, "invalid_parameter"),
        (proxy_event(corpus.jpeg(), method="GET"), 404, "not_found"),
    ],
    ids=["missing_body", "empty_body", "no_content_type", "json_type", "text_not_base64", "bad_base64",
         "top_k_zero", "top_k_word", "get_predict"],
)
def test_requests_refused_before_the_endpoint_is_called(frontdoor, runtime, event, status, code):
    got_status, body, _ = call(frontdoor, event)
    assert (got_status, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]


def test_body_over_max_body_bytes_is_413_without_calling_the_endpoint(frontdoor, runtime, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "1000")
    status, body, _ = call(frontdoor, proxy_event(corpus.jpeg()))
    assert status == 413
    assert "limit is 1,000 bytes" in body["error"]["message"]


@pytest.mark.parametrize("status", [400, 413, 415])
def test_handler_refusals_pass_through_with_their_first_line_only(frontdoor, runtime, status):
    """TorchServe's toolkit answers the message, then the traceback."""
    model_error(runtime, status, "the body is not a recognised image\nTraceback (most recent call last):\n  File x")
    got_status, body, _ = call(frontdoor, proxy_event(corpus.jpeg()))
    assert got_status == status
    assert body["error"]["message"] == "the body is not a recognised image"


@pytest.mark.parametrize("status", [400, 413, 415])
def test_handler_refusals_in_the_ray_serve_containers_json_pass_through_with_their_message(frontdoor, runtime, status):
    model_error(runtime, status, json.dumps({"error": "the body is not a recognised image"}))
    got_status, body, _ = call(frontdoor, proxy_event(corpus.jpeg()))
    assert (got_status, body["error"]["message"]) == (status, "the body is not a recognised image")


def test_model_crash_is_502_without_its_message(frontdoor, runtime):
    model_error(runtime, 500, "CUDA out of memory at /opt/ml/model/code/inference.py\nTraceback ...")
    status, body, _ = call(frontdoor, proxy_event(corpus.jpeg()))
    assert (status, body["error"]["code"]) == (502, "model_error")
    assert "inference.py" not in json.dumps(body)


@pytest.mark.parametrize(
    "code, http_status",
    [("ModelNotReadyException", 429), ("ServiceUnavailable", 503), ("ThrottlingException", 400)],
)
def test_endpoint_not_ready_or_throttled_is_503(frontdoor, runtime, code, http_status):
    runtime.add_client_error("invoke_endpoint", service_error_code=code, http_status_code=http_status)
    status, body, _ = call(frontdoor, proxy_event(corpus.jpeg()))
    assert (status, body["error"]["code"]) == (503, "endpoint_unavailable")


def test_missing_endpoint_is_503(frontdoor, runtime):
    runtime.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        service_message="Endpoint imgclf-test of account 123456789012 not found.",
        http_status_code=400,
    )
    assert call(frontdoor, proxy_event(corpus.jpeg()))[0] == 503


def test_unexpected_failure_is_500_without_a_stack_trace(frontdoor, monkeypatch, log_lines):
    monkeypatch.delenv("ENDPOINT_NAME")
    status, body, _ = call(frontdoor, proxy_event(corpus.jpeg()))
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert "Traceback" not in json.dumps(body)
    assert any("ENDPOINT_NAME is not set" in line.get("exception", "") for line in log_lines())  # the log has it


def test_every_log_line_carries_the_request_id(frontdoor, runtime, log_lines):
    model_error(runtime, 415, "nope")
    event = proxy_event(corpus.jpeg())
    call(frontdoor, event)
    logs = log_lines()
    assert len(logs) >= 2 and all(line["correlation_id"] == event["requestContext"]["requestId"] for line in logs)


def test_errors_are_counted_by_code_in_emf_metrics(frontdoor, capsys):
    call(frontdoor, proxy_event(corpus.jpeg(), "text/plain"))
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    errors = [b for b in blobs if "Errors" in b]
    assert errors and errors[0]["code"] == "unsupported_media_type"
    assert any("Latency" in b for b in blobs)


class _SlowEndpoint(BaseHTTPRequestHandler):
    def do_POST(self):
        time.sleep(1.5)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_endpoint_slower_than_the_read_timeout_is_504(frontdoor, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setattr(frontdoor, "RUNTIME_CONFIG", Config(connect_timeout=1, read_timeout=0.3, retries={"total_max_attempts": 2, "mode": "standard"}))
        started = time.monotonic()
        status, body, _ = call(frontdoor, proxy_event(corpus.jpeg()))
        assert (status, body["error"]["code"]) == (504, "endpoint_timeout")
        assert time.monotonic() - started < 5
    finally:
        server.shutdown()
        server.server_close()


def test_retry_budget_stays_under_api_gateways_29_seconds(frontdoor):
    config = frontdoor.RUNTIME_CONFIG
    attempts = config.retries["total_max_attempts"]
    assert attempts <= 3 and attempts * (config.connect_timeout + config.read_timeout) + 1 < 29


@pytest.mark.parametrize(
    "describe, status, endpoint_status",
    [
        ({"EndpointStatus": "InService"}, 200, "InService"),
        ({"EndpointStatus": "Creating"}, 503, "Creating"),
        ("AccessDeniedException", 200, "Unknown"),
        ("ValidationException", 503, "NotFound"),
    ],
)
def test_health_reports_the_endpoint_status_without_invoking_it(frontdoor, describe, status, endpoint_status):
    with Stubber(frontdoor.sagemaker_client()) as sagemaker:
        if isinstance(describe, dict):
            response = {
                "EndpointName": "imgclf-test",
                "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/imgclf-test",
                "EndpointConfigName": "imgclf-test-config",
                "CreationTime": "2026-11-25T10:00:00Z",
                "LastModifiedTime": "2026-11-25T10:00:00Z",
                **describe,
            }
            sagemaker.add_response("describe_endpoint", response, {"EndpointName": "imgclf-test"})
        else:
            sagemaker.add_client_error("describe_endpoint", service_error_code=describe, http_status_code=400)
        got_status, body, _ = call(frontdoor, proxy_event(None, None, method="GET", path="/health"))
    assert (got_status, body["status"]) == (status, endpoint_status)


def test_model_answer_that_is_not_a_json_object_is_502(frontdoor, runtime):
    runtime.add_response("invoke_endpoint", endpoint_answer(["cat"]))
    status, body, _ = call(frontdoor, proxy_event(corpus.jpeg()))
    assert (status, body["error"]["code"]) == (502, "model_error")


def _run_frontdoor_in_asset_layout(tmp_path, event: dict, env: dict[str, str]) -> dict:
    """Run the handler in a fresh interpreter laid out like the Lambda asset (module-level
    settings such as CORS are read at import, as in a cold start)."""
    shutil.copytree(SERVING_DIR / "frontdoor", tmp_path / "frontdoor", ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        "import json, sys; sys.modules['serving'] = None; "  # the repo's package is not in the asset
        "from frontdoor.app import handler; "
        "event = json.loads(sys.stdin.read()); "
        "context = type('C', (), {'function_name': 'f', 'memory_limit_in_mb': 128, "
        "'invoked_function_arn': 'arn', 'aws_request_id': 'r'})(); "
        "print(json.dumps(handler(event, context)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(event),
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"PATH": "/usr/bin:/bin", "ENDPOINT_NAME": "x", "AWS_DEFAULT_REGION": "us-east-1", **env},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_lambda_asset_layout_imports_as_top_level_frontdoor(tmp_path):
    """The asset is serving/ with only frontdoor/ kept: `frontdoor.app.handler` must import alone."""
    answer = _run_frontdoor_in_asset_layout(tmp_path, proxy_event(corpus.jpeg(), "text/plain"), {})
    assert answer["statusCode"] == 415
    assert "Access-Control-Allow-Origin" not in answer.get("multiValueHeaders", {})


def test_configured_cors_origins_are_allowed_on_answers(tmp_path):
    event = proxy_event(corpus.jpeg(), "text/plain")
    event["headers"]["Origin"] = "https://app.example.com"
    event["multiValueHeaders"]["Origin"] = ["https://app.example.com"]
    answer = _run_frontdoor_in_asset_layout(
        tmp_path, event, {"CORS_ORIGINS": "https://other.example.com,https://app.example.com"}
    )
    assert answer["statusCode"] == 415
    assert answer["multiValueHeaders"]["Access-Control-Allow-Origin"] == ["https://app.example.com"]


@pytest.mark.parametrize("value", ["0", "12", "soon"])
def test_a_bad_read_timeout_setting_is_a_500_without_a_stack_trace(frontdoor, monkeypatch, log_lines, value):
    frontdoor.runtime_client.cache_clear()
    monkeypatch.setenv("ENDPOINT_READ_TIMEOUT_SECONDS", value)
    status, body, _ = call(frontdoor, proxy_event(corpus.jpeg()))
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert "Traceback" not in json.dumps(body)
    assert any("ENDPOINT_READ_TIMEOUT_SECONDS" in line.get("exception", "") for line in log_lines())


def test_a_read_timeout_setting_within_the_limit_configures_the_client(frontdoor, monkeypatch):
    frontdoor.runtime_client.cache_clear()
    monkeypatch.setenv("ENDPOINT_READ_TIMEOUT_SECONDS", "2.5")
    assert frontdoor.runtime_client().meta.config.read_timeout == 2.5


@pytest.mark.parametrize("value", ["0", "5000", "three", "-1"])
@pytest.mark.parametrize("query", [None, {"top_k": "2"}], ids=["default", "caller_top_k"])
def test_a_bad_top_k_setting_is_a_500_that_never_reaches_the_endpoint(frontdoor, runtime, monkeypatch, log_lines,
                                                                     value, query):
    monkeypatch.setenv("TOP_K", value)
    status, body, _ = call(frontdoor, proxy_event(corpus.jpeg(), query=query))
    assert (status, body["error"]["code"]) == (500, "internal_error")  # not invalid_image: no caller fault
    assert "Traceback" not in json.dumps(body)
    assert any("TOP_K must be an integer from 1 to 1000" in line.get("exception", "") for line in log_lines())
