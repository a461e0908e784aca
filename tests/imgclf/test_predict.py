"""`imgclf predict` against a real HTTP server on 127.0.0.1 that records what it got."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imgclf.cli import main

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
ANSWER = {"predictions": [{"label": "cat", "score": 0.9}, {"label": "coffee", "score": 0.1}],
          "model": {"name": "resnet50", "version": "v1"}, "request_id": "r1"}


@pytest.fixture
def api():
    seen: dict = {}
    reply: dict = {"status": 200, "body": ANSWER}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            seen.update(path=self.path, headers={k.lower(): v for k, v in self.headers.items()},
                        body=self.rfile.read(int(self.headers["Content-Length"])))
            payload = json.dumps(reply["body"]).encode()
            self.send_response(reply["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen, reply
    server.shutdown()
    server.server_close()


def test_predict_posts_the_raw_bytes_with_their_real_type_and_prints_the_top_k(api, tmp_path, capsys):
    url, seen, _ = api
    (tmp_path / "x.jpg").write_bytes(PNG)  # the name lies; the bytes decide
    assert main(["predict", str(tmp_path / "x.jpg"), "--url", url, "--api-key", "k1", "--top-k", "2"]) == 0
    assert seen["body"] == PNG and seen["headers"]["content-type"] == "image/png"
    assert seen["headers"]["x-api-key"] == "k1" and seen["path"] == "/predict?top_k=2"
    out = capsys.readouterr().out
    assert "cat" in out and "0.9000" in out and "coffee" in out


def test_an_api_error_is_shown_with_its_status_code_and_message(api, tmp_path, capsys):
    url, _, reply = api
    reply.update(status=415, body={"error": {"code": "unsupported_media_type", "message": "send an image"}, "request_id": "r2"})
    (tmp_path / "x.png").write_bytes(PNG)
    assert main(["predict", str(tmp_path / "x.png"), "--url", url]) == 2
    assert "HTTP 415 unsupported_media_type: send an image (request id r2)" in capsys.readouterr().err


def test_a_gateway_403_hints_at_the_api_key(api, tmp_path, capsys):
    url, _, reply = api
    reply.update(status=403, body={"message": "Forbidden"})
    (tmp_path / "x.png").write_bytes(PNG)
    assert main(["predict", str(tmp_path / "x.png"), "--url", url + "/prod/predict"]) == 2
    assert "HTTP 403 from the API gateway: Forbidden (missing or wrong --api-key?)" in capsys.readouterr().err


def test_a_missing_image_file_is_a_clear_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.jpg"), "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_an_unreachable_api_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(PNG)
    assert main(["predict", str(tmp_path / "x.png"), "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot reach http://127.0.0.1:9/predict" in capsys.readouterr().err
