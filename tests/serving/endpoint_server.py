"""A minimal SageMaker endpoint on 127.0.0.1 for tests and the benchmark (test-only).

It answers the container contract (`GET /ping`, `POST /invocations`) and the runtime API path
that boto3 calls (`POST /endpoints/{name}/invocations`) through the real handlers in the
toolkit's handler service. On the runtime path a container error comes back the way SageMaker
wraps it: HTTP 424, `x-amzn-ErrorType: ModelError`, with OriginalStatusCode/OriginalMessage; an
unknown endpoint name is a 400 ValidationError.
"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from toolkit_harness import HandlerService

_RUNTIME_PATH = re.compile(r"^/endpoints/([^/]+)/invocations$")
_FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")


class EndpointServer:
    """Serve the handler service as endpoint `endpoint_name`; use as a context manager."""

    def __init__(self, service: HandlerService, endpoint_name: str = "imgclf-test"):
        self.endpoint_name = endpoint_name
        self.service = service
        self.calls = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "EndpointServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if self.path == "/ping":
                    self._send(200, b"", "text/plain")
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                match = _RUNTIME_PATH.match(self.path)
                if self.path == "/invocations":
                    answer = self._invoke(body)
                    self._send(answer.status, answer.body, answer.content_type or "text/plain")
                elif match is None:
                    self._send(404, b"not found", "text/plain")
                elif match.group(1) != endpoint.endpoint_name:
                    message = f"Endpoint {match.group(1)} of account 123456789012 not found."
                    self._send_error(400, "ValidationError", {"Message": message})
                else:
                    answer = self._invoke(body)
                    if answer.status == 200:
                        self._send(200, answer.body, answer.content_type or "application/json")
                    else:
                        self._send_model_error(answer.status, answer.body.decode("utf-8", "replace"))

            def _invoke(self, body: bytes):
                endpoint.calls += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() in _FORWARDED}
                return endpoint.service.invoke(body, headers)

            def _send_model_error(self, status: int, message: str) -> None:
                error = "client" if status < 500 else "server"
                self._send_error(
                    424,
                    "ModelError",
                    {
                        "ErrorCode": f"{error.upper()}_ERROR_FROM_MODEL",
                        "Message": f'Received {error} error ({status}) from primary with message "{message}". '
                        "See the endpoint's CloudWatch log stream for more information.",
                        "OriginalStatusCode": status,
                        "OriginalMessage": message,
                        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/"
                        + endpoint.endpoint_name,
                    },
                )

            def _send_error(self, status: int, error_type: str, fields: dict) -> None:
                payload = json.dumps(fields).encode()
                self._send(status, payload, "application/json", {"x-amzn-ErrorType": f"{error_type}:"})

            def _send(self, status: int, payload: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler
