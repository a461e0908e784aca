"""The front door's model-quality metrics (confidence, entropy, class) as CloudWatch embedded
metric format, its X-Model-Version header, and its capture of sampled predictions (botocore
Stubber for S3's PutObject, a local folder for the local front door's seam)."""
from __future__ import annotations

import base64
import json
import math
import threading
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.session
import pytest
from botocore.stub import ANY, Stubber

import hostile_corpus as corpus
from api_events import proxy_event
from test_frontdoor import call, endpoint_answer

ANSWER = {
    "model": {"name": "resnet50", "version": "v-42"},
    "top_k": 2,
    "predictions": [{"label": "cat", "score": 0.7}, {"label": "dog", "score": 0.2}],
}


#: CloudWatch's units, from botocore's model of the CloudWatch API (MetricDatum.Unit).
UNITS = set(botocore.session.get_session().get_service_model("cloudwatch").shape_for("StandardUnit").enum)


def emf_records(out: str) -> list[dict]:
    """Every EMF line printed, checked against the embedded metric format specification (CloudWatch
    user guide, "Specification: Embedded metric format"): one JSON object per line; _aws.Timestamp
    in milliseconds since the epoch; CloudWatchMetrics directives each with a Namespace (1-255
    characters), Dimensions (at least one set, each of at most 30 names of string members at the
    root) and Metrics (at most 100, each a Name of 1-255 characters and a CloudWatch unit) whose
    members at the root are a number or an array of at most 100 numbers."""
    now_ms = datetime.now(timezone.utc).timestamp() * 1000
    records = []
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        assert isinstance(blob, dict) and len(line.encode()) <= 256 * 1024
        meta = blob["_aws"]
        assert isinstance(meta["Timestamp"], int) and abs(meta["Timestamp"] - now_ms) < 3_600_000, meta["Timestamp"]
        assert isinstance(meta["CloudWatchMetrics"], list) and meta["CloudWatchMetrics"]
        for directive in meta["CloudWatchMetrics"]:
            assert isinstance(directive["Namespace"], str) and 1 <= len(directive["Namespace"]) <= 255
            assert directive["Dimensions"], directive
            for dimension_set in directive["Dimensions"]:
                assert 0 < len(dimension_set) <= 30
                for name in dimension_set:
                    assert isinstance(blob[name], str) and blob[name], name
            assert 0 < len(directive["Metrics"]) <= 100
            for metric in directive["Metrics"]:
                assert 1 <= len(metric["Name"]) <= 255 and metric.get("Unit", "None") in UNITS, metric
                value = blob[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                assert 0 < len(values) <= 100 and all(isinstance(v, (int, float)) for v in values), metric
        records.append(blob)
    return records


def directive_of(record: dict, metric: str) -> dict:
    (found,) = [d for d in record["_aws"]["CloudWatchMetrics"] if metric in [m["Name"] for m in d["Metrics"]]]
    return found


@pytest.fixture
def answered(frontdoor):
    with Stubber(frontdoor.runtime_client()) as stubber:
        stubber.add_response("invoke_endpoint", endpoint_answer(ANSWER))
        yield stubber


def test_a_prediction_emits_confidence_and_entropy_per_model_version(frontdoor, answered, capsys):
    status, _, headers = call(frontdoor, proxy_event(corpus.jpeg()))
    assert status == 200 and headers["X-Model-Version"] == "v-42"
    records = emf_records(capsys.readouterr().out)
    (quality,) = [r for r in records if "Confidence" in r]
    assert quality["Confidence"] == [0.7]
    # 0.7 and 0.2 of the top 2, and the 0.1 outside them as one more outcome.
    assert quality["Entropy"] == [pytest.approx(-sum(p * math.log(p) for p in (0.7, 0.2, 0.1)))]
    assert quality["model_version"] == "v-42"
    assert directive_of(quality, "Confidence")["Dimensions"] == [["service"], ["service", "model_version"]]


def test_the_predicted_class_is_a_dimension_of_its_own_metric(frontdoor, answered, capsys):
    call(frontdoor, proxy_event(corpus.jpeg()))
    (counted,) = [r for r in emf_records(capsys.readouterr().out) if "ClassPredicted" in r]
    assert counted["class"] == "cat" and counted["ClassPredicted"] == [1.0]
    assert directive_of(counted, "ClassPredicted")["Dimensions"] == [["service", "class"]]


def test_an_answer_without_scores_is_passed_on_unmeasured(frontdoor, capsys):
    with Stubber(frontdoor.runtime_client()) as stubber:
        stubber.add_response("invoke_endpoint", endpoint_answer({"label": "cat"}))
        status, body, headers = call(frontdoor, proxy_event(corpus.jpeg()))
    assert status == 200 and body["label"] == "cat" and "X-Model-Version" not in headers
    assert not [r for r in emf_records(capsys.readouterr().out) if "Confidence" in r]


def test_a_label_outside_the_bounds_counts_as_other():
    from imgclf_serving.frontdoor.prediction_metrics import OTHER_CLASS, class_dimension

    assert class_dimension("golden retriever") == "golden retriever"
    assert class_dimension("x" * 500) == OTHER_CLASS
    assert class_dimension("caf\u00e9\n") == OTHER_CLASS


# --- capture -----------------------------------------------------------------------------------

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def capturing(frontdoor, monkeypatch):
    monkeypatch.setenv("CAPTURE_PERCENT", "100")
    monkeypatch.setenv("CAPTURE_BUCKET", "capture-bucket")
    monkeypatch.setenv("CAPTURE_PREFIX", "monitoring/capture")
    monkeypatch.delenv("CAPTURE_IMAGES", raising=False)
    monkeypatch.delenv("CAPTURE_LOCAL_DIR", raising=False)
    monkeypatch.delenv("CAPTURE_KMS_KEY_ARN", raising=False)
    frontdoor.s3_client.cache_clear()
    yield frontdoor
    frontdoor.s3_client.cache_clear()


def _put_params(**extra):
    return {"Bucket": "capture-bucket", "Key": ANY, "Body": ANY, "ContentType": "application/json", **extra}


def test_a_sampled_prediction_is_put_kms_encrypted_without_the_image(capturing, answered, monkeypatch):
    monkeypatch.setenv("CAPTURE_KMS_KEY_ARN", KEY_ARN)
    sent = []
    with Stubber(capturing.s3_client()) as s3:
        s3.add_response("put_object", {}, _put_params(ServerSideEncryption="aws:kms", SSEKMSKeyId=KEY_ARN, BucketKeyEnabled=True))
        capturing.s3_client().meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: sent.append(dict(params)))
        event = proxy_event(corpus.jpeg())
        assert call(capturing, event)[0] == 200
        s3.assert_no_pending_responses()
    request_id = event["requestContext"]["requestId"]
    assert sent[0]["Key"].startswith("monitoring/capture/") and sent[0]["Key"].endswith(f"/{request_id}.json")
    captured = json.loads(sent[0]["Body"])
    assert captured["request_id"] == request_id and captured["model"]["version"] == "v-42"
    assert captured["confidence"] == 0.7 and captured["predictions"] == ANSWER["predictions"]
    assert "image_base64" not in captured


def test_without_a_key_the_bucket_default_encryption_applies(capturing, answered):
    with Stubber(capturing.s3_client()) as s3:
        s3.add_response("put_object", {}, _put_params())
        assert call(capturing, proxy_event(corpus.jpeg()))[0] == 200
        s3.assert_no_pending_responses()


def test_a_failed_capture_never_fails_the_request(capturing, answered, capsys):
    with Stubber(capturing.s3_client()) as s3:
        s3.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        status, body, _ = call(capturing, proxy_event(corpus.jpeg()))
    assert status == 200 and body["predictions"] == ANSWER["predictions"]
    assert any("CaptureFailures" in r for r in emf_records(capsys.readouterr().out))


def test_capture_off_writes_nothing(capturing, answered, monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTURE_PERCENT", "0")
    monkeypatch.setenv("CAPTURE_LOCAL_DIR", str(tmp_path))
    assert call(capturing, proxy_event(corpus.jpeg()))[0] == 200
    assert not list(tmp_path.rglob("*.json"))


def test_the_local_seam_writes_the_same_record_with_the_image_when_asked(capturing, answered, monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTURE_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("CAPTURE_IMAGES", "true")
    event = proxy_event(corpus.jpeg())
    assert call(capturing, event)[0] == 200
    (written,) = tmp_path.rglob("*.json")
    assert written.relative_to(tmp_path).parts[:2] == ("monitoring", "capture")
    captured = json.loads(written.read_text())
    assert base64.b64decode(captured["image_base64"]) == corpus.jpeg()


def test_an_image_over_the_size_cap_is_left_out_and_the_record_says_so(capturing, answered, monkeypatch, tmp_path):
    monkeypatch.setenv("CAPTURE_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("CAPTURE_IMAGES", "true")
    monkeypatch.setenv("CAPTURE_MAX_BYTES", str(len(corpus.jpeg())))
    assert call(capturing, proxy_event(corpus.jpeg()))[0] == 200
    (written,) = tmp_path.rglob("*.json")
    captured = json.loads(written.read_text())
    assert "image_base64" not in captured and "CAPTURE_MAX_BYTES" in captured["image_omitted"]
    assert len(written.read_bytes()) <= len(corpus.jpeg())


class _AnsweringEndpoint(BaseHTTPRequestHandler):
    """InvokeEndpoint's HTTP side on loopback, always answering ANSWER."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(ANSWER).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_local_front_door_writes_the_configured_capture_under_its_serve_folder(tmp_path):
    """The real local front door process (imgclf/local/frontdoor.py), with the environment the
    config gives it, writes the record the local drift report reads."""
    from imgclf.local.frontdoor import FrontDoorProcess
    from imgclf.monitor import local_records
    from infra.config import load_config
    from infra.frontdoor_environment import frontdoor_environment

    server = ThreadingHTTPServer(("127.0.0.1", 0), _AnsweringEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    deployment = {**frontdoor_environment(load_config({"monitoring": {"capture_percent": 100}})),
                  "CAPTURE_LOCAL_DIR": str(tmp_path / "serve")}
    try:
        with FrontDoorProcess(f"http://127.0.0.1:{server.server_address[1]}", "imgclf-endpoint",
                              tmp_path / "frontdoor.log", deployment=deployment) as door:
            request = urllib.request.Request(f"{door.url}/predict", data=corpus.jpeg(), method="POST",
                                             headers={"Content-Type": "image/jpeg"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.headers["X-Model-Version"] == "v-42"
                request_id = answer.headers["X-Request-Id"]
    finally:
        server.shutdown()
    (record,) = local_records(tmp_path / "serve", datetime.now(timezone.utc) - timedelta(hours=1))
    assert record["request_id"] == request_id and record["model"]["version"] == "v-42"
    assert "image_base64" not in record
