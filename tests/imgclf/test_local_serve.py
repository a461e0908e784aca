"""`imgclf local serve` as a user runs it: a subprocess serving a model dir in the Ray Serve container
until SIGTERM, with the config's container environment on the container and the config's Lambda
environment on the front door."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from hostile_corpus import jpeg  # noqa: E402
from local_http import request_json  # noqa: E402
from model_dirs import CLASSES, REPO_ROOT, build_model_dir  # noqa: E402

START_SECONDS = 480  # Ray starts in a minute or more on 2 busy cores
TOP_K = 2  # the model's own default is 3: 2 can only come from the config


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(front door URL, endpoint URL, process, log path) of `imgclf local serve MODEL_DIR --port 0`."""
    tmp = tmp_path_factory.mktemp("serve")
    model_dir = build_model_dir(tmp / "model", image_size=32)
    config = tmp / "config.json"
    config.write_text(json.dumps({"endpoint": {"top_k": TOP_K}}))
    log = tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("TOP_K", "MAX_BODY_BYTES")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgclf", "local", "serve", str(model_dir), "--port", "0", "--config", str(config)],
            cwd=REPO_ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + START_SECONDS
    try:
        while True:
            text = log.read_text(errors="replace")
            door = re.search(r"front door \(API Gateway \+ Lambda\): (http://\S+)/predict", text)
            endpoint = re.search(r"^endpoint \S+: (http://\S+) ", text, re.M)
            if door and endpoint:
                break
            assert proc.poll() is None and time.monotonic() < deadline, f"serve did not start:\n{text[-2000:]}"
            time.sleep(0.2)
        yield door.group(1), endpoint.group(1), proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_an_image_posted_to_the_front_door_gets_the_configured_top_k(served):
    door, _, _, _ = served
    status, result = request_json(f"{door}/predict", jpeg())
    assert status == 200 and result["top_k"] == TOP_K
    assert {p["label"] for p in result["predictions"]} <= set(CLASSES) and result["request_id"]


def test_the_endpoint_runs_with_the_models_container_environment(served):
    _, endpoint, _, _ = served
    status, result = request_json(f"{endpoint}/invocations", jpeg())  # no top_k on the request: the container's TOP_K
    assert (status, result["top_k"]) == (200, TOP_K)


def test_the_front_door_caps_the_body_as_the_deployed_lambda_does(served):
    door, _, _, _ = served
    status, result = request_json(f"{door}/predict", jpeg() + b"\0" * 4_100_000)  # serverless: 4 MB, not 4.4 MB
    assert (status, result["error"]["code"]) == (413, "payload_too_large")
    assert "4,000,000" in result["error"]["message"]


def test_health_reports_the_served_endpoint_in_service(served):
    door, _, _, _ = served
    status, result = request_json(f"{door}/health")
    assert (status, result["status"]) == (200, "InService")


def test_sigterm_stops_the_container_and_both_servers_and_exits_0(served):
    _, _, proc, log = served
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    text = log.read_text()
    assert "stopped: model container, endpoint and front door shut down" in text
    container = re.search(r"^model container: Ray Serve on http://127\.0\.0\.1:(\d+) ", text, re.M)
    with pytest.raises(ConnectionRefusedError):  # Ray Serve's proxy went down with the rest
        socket.create_connection(("127.0.0.1", int(container.group(1))), timeout=5).close()
