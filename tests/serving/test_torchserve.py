"""The model dir served by the inference container's own stack: TorchServe 0.12 with
sagemaker-pytorch-inference 2.0.25 (from .venv-torchserve, built by `make`), on 127.0.0.1."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import hostile_corpus as corpus
from model_dirs import CLASSES, REPO_ROOT, build_model_dir

TS_PYTHON = REPO_ROOT / ".venv-torchserve" / "bin" / "python"
LAUNCHER = Path(__file__).with_name("torchserve_launcher.py")
READY_TIMEOUT_S = 240

pytestmark = pytest.mark.slow


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def post(url: str, path: str, body: bytes, headers: dict[str, str], timeout: float = 60) -> tuple[int, bytes]:
    """http.client, not urllib: TorchServe answers an oversize body with 413 before reading it
    all, and the answer must still be read when the rest of the upload is refused."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        try:
            connection.request("POST", path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    """/ping answers before the worker has loaded the model, so ask the management API."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"TorchServe exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models/model", timeout=5) as response:
                if any(w["status"] == "READY" for w in json.loads(response.read())[0]["workers"]):
                    return
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(1)
    pytest.fail(f"no TorchServe worker ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def torchserve(tmp_path_factory):
    if not TS_PYTHON.exists():
        pytest.fail(f"{TS_PYTHON} is missing: build it with `make .venv-torchserve/.stamp`")
    work = tmp_path_factory.mktemp("torchserve")
    model_dir = build_model_dir(work / "model", image_size=32)
    port, *other_ports = free_ports(4)
    log = work / "torchserve.log"
    env = {**os.environ, "SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "60"}
    env.pop("PYTHONPATH", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(TS_PYTHON), str(LAUNCHER), str(model_dir), str(work / "ts"), str(port), *map(str, other_ports)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: java and the workers go down with it
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, log)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_the_container_stack_uses_its_own_toolkit_copy_not_the_main_venvs():
    probe = "import sagemaker_inference, torch; print(sagemaker_inference.__file__); print(torch.__file__)"
    toolkit, torch_file = subprocess.run(
        [str(TS_PYTHON), "-c", probe], check=True, capture_output=True, text=True, timeout=120
    ).stdout.split()
    assert ".venv-torchserve" in toolkit
    assert Path(sys.prefix) in Path(torch_file).parents  # torch is shared with the main venv


def test_jpeg_posted_to_invocations_gets_json_top_k(torchserve):
    headers = {"Content-Type": "image/jpeg", "Accept": "application/json"}
    status, body = post(torchserve, "/invocations", corpus.jpeg(), headers)
    assert status == 200
    answer = json.loads(body)
    assert answer["top_k"] == 3 and {p["label"] for p in answer["predictions"]} == set(CLASSES)


def test_custom_attributes_header_reaches_the_handlers(torchserve):
    headers = {"Content-Type": "image/png", "X-Amzn-SageMaker-Custom-Attributes": "top_k=1"}
    status, body = post(torchserve, "/invocations", corpus.png(), headers)
    assert (status, len(json.loads(body)["predictions"])) == (200, 1)


@pytest.mark.parametrize("name", [case.name for case in corpus.hostile_cases()])
def test_hostile_input_gets_its_documented_status_from_the_container(torchserve, cases, name):
    case = cases[name]
    status, body = post(torchserve, "/invocations", case.body, {"Content-Type": case.content_type})
    assert status == case.status, body[:500]
    if status != 200 and name != "body_7mb":  # TorchServe itself refuses >6.5 MB, with its own text
        assert case.message in body.decode("utf-8", "replace").splitlines()[0]
