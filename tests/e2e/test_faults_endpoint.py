"""Endpoint faults seen through the local front door (the real Lambda handler in its own process):
an endpoint that is down or not ready is a 503 that heals by itself, a slow one a bounded 504."""
from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from imgclf.local.endpoint import EndpointServer
from imgclf.local.frontdoor import FrontDoorProcess

ENDPOINT = "imgclf-faults"
#: Short enough for a quick test, and a setting production honours (imgclf_serving/frontdoor/app.py).
READ_TIMEOUT = "0.5"


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).resize((90, 60)).save(buffer, "JPEG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, timeout: float = 30) -> tuple[int, dict]:
    parts = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(parts[0], int(parts[1]), timeout=timeout)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "image/jpeg"})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def settled_thread_count(process: psutil.Process, seconds: float = 5) -> int:
    """The thread count once it holds still: the HTTP thread of a finished request ends with its
    connection, a moment after the caller has the answer; a hung worker never ends."""
    count, deadline = process.num_threads(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        count, previous = process.num_threads(), count
        if count == previous:
            break
    return count


class _FakeRuntime(BaseHTTPRequestHandler):
    """An endpoint that answers every invocation with the server's `answer(handler)`, then closes
    the connection (so that the front door's next call opens a new one, to whatever listens then)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.close_connection = True
        self.server.answer(self)

    def log_message(self, *args) -> None:
        pass


def not_ready(handler: BaseHTTPRequestHandler) -> None:
    """InvokeEndpoint's answer while the model container is not ready (ModelNotReadyException, 429)."""
    payload = json.dumps({"Message": f"Model for endpoint {ENDPOINT} is not ready"}).encode()
    handler.send_response(429)
    handler.send_header("x-amzn-ErrorType", "ModelNotReadyException:")
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


class FakeEndpoint:
    def __init__(self, answer, port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _FakeRuntime)
        self._server.daemon_threads = True
        self._server.answer = answer
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeEndpoint":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize("fault", ["down", "not ready"])
def test_the_front_door_answers_503_while_the_endpoint_is_unavailable_and_heals_when_it_returns(
        model_container, jpeg, tmp_path: Path, fault):
    port = free_port()
    with FrontDoorProcess(f"http://127.0.0.1:{port}", ENDPOINT, tmp_path / "frontdoor.log") as door:
        pid = door._proc.pid
        if fault == "down":  # nothing listens on the port
            status, body = post(door.url, jpeg)
        else:
            with FakeEndpoint(not_ready, port):
                status, body = post(door.url, jpeg)
        assert (status, body["error"]["code"]) == (503, "endpoint_unavailable")
        assert "try again" in body["error"]["message"] and "Traceback" not in body["error"]["message"]

        with EndpointServer(model_container, ENDPOINT, port=port):  # the real model, in its Ray Serve container
            status, body = post(door.url, jpeg)
        assert status == 200 and {p["label"] for p in body["predictions"]} == {"cat", "coffee", "rocket"}
        assert door._proc.pid == pid and door._proc.poll() is None


def test_a_slow_endpoint_is_a_504_within_the_read_timeout_and_leaves_no_hung_worker(
        jpeg, tmp_path: Path, monkeypatch):
    release = threading.Event()

    def stalls(handler: BaseHTTPRequestHandler) -> None:
        release.wait(60)  # far longer than the front door waits

    monkeypatch.setenv("ENDPOINT_READ_TIMEOUT_SECONDS", READ_TIMEOUT)
    with FakeEndpoint(stalls) as endpoint, \
            FrontDoorProcess(endpoint.url, ENDPOINT, tmp_path / "frontdoor.log") as door:
        started = time.monotonic()
        status, body = post(door.url, jpeg)
        # 2 attempts of 0.5 s plus the standard retry mode's backoff (at most 1 s)
        assert (status, body["error"]["code"]) == (504, "endpoint_timeout")
        assert time.monotonic() - started < 2 * 0.5 + 1 + 1.5
        process = psutil.Process(door._proc.pid)
        threads_after_one = settled_thread_count(process)  # main + the Lambda instance's worker

        answers = []
        callers = [threading.Thread(target=lambda: answers.append(post(door.url, jpeg))) for _ in range(3)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=30)
        assert [(s, b["error"]["code"]) for s, b in answers] == [(504, "endpoint_timeout")] * 3
        assert settled_thread_count(process) == threads_after_one
        release.set()
