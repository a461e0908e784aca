"""A local SageMaker endpoint: the model container behind the container and runtime HTTP contracts.

The container is the model container the config chooses (imgclf/local/container.py: Ray Serve by
default). The server answers the container contract (`GET /ping`: 200 or 503 with an empty body, as
the Ray Serve container's adapter answers it; `POST /invocations`), and
the runtime API path that boto3's `invoke_endpoint` calls (`POST /endpoints/{name}/invocations`),
which passes on the headers SageMaker forwards to the container. On the runtime path a container
error comes back as SageMaker wraps it, so callers (the front door) handle it as in the cloud:
HTTP 424 `ModelError` with OriginalStatusCode/OriginalMessage; an unknown endpoint name is a 400
`ValidationError`. It also answers the control-plane `DescribeEndpoint` (JSON 1.1, `POST /` with
`X-Amz-Target: SageMaker.DescribeEndpoint`) as InService, so the front door's `GET /health` works
against it. A body's Content-Length is checked before the body is read. Binds 127.0.0.1 only.
"""
from __future__ import annotations

import json
import re
import shutil
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from imgclf.errors import UserError
from imgclf.local.container import Answer, Container
from imgclf.local.http_body import BodyError, declared_length

#: Headers SageMaker forwards from InvokeEndpoint to the container.
FORWARDED_HEADERS = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")
#: InvokeEndpoint's body limit (API reference: Body, max 6 MB).
MAX_INVOKE_BYTES = 6_291_456
LOCAL_ACCOUNT = "000000000000"
#: The control-plane operations (X-Amz-Target) the endpoint answers.
DESCRIBE_ENDPOINT = "SageMaker.DescribeEndpoint"
JSON_11 = "application/x-amz-json-1.1"
_RUNTIME_PATH = re.compile(r"^/endpoints/([^/?]+)/invocations$")


class EndpointServer:
    """Serve a started model container as endpoint `endpoint_name` on 127.0.0.1; a context manager."""

    def __init__(self, container: Container, endpoint_name: str, port: int = 0,
                 variant: str = "AllTraffic", region: str = "us-east-1") -> None:
        self.container = container
        self.endpoint_name = endpoint_name
        self.variant = variant
        self.region = region
        self.created = time.time()
        self.calls = 0
        self._calls_lock = threading.Lock()  # handler threads count concurrently
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="endpoint", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "EndpointServer":
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def __enter__(self) -> "EndpointServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{LOCAL_ACCOUNT}:endpoint/{name.lower()}"

    def description(self) -> dict:
        """DescribeEndpoint's answer: a served endpoint is InService (times as JSON 1.1 epoch seconds)."""
        return {
            "EndpointName": self.endpoint_name,
            "EndpointArn": self.arn(self.endpoint_name),
            "EndpointConfigName": self.endpoint_name,
            "ProductionVariants": [{"VariantName": self.variant}],
            "EndpointStatus": "InService",
            "CreationTime": self.created,
            "LastModifiedTime": self.created,
        }

    def _count_call(self) -> None:
        with self._calls_lock:
            self.calls += 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # the CLI prints its own summary
                pass

            def do_GET(self) -> None:
                if self.path == "/ping":
                    self._send(200 if endpoint.container.ping() else 503, b"", "text/plain")
                else:
                    self._send(404, b"not found", "text/plain")

            def do_POST(self) -> None:
                try:
                    body = self.rfile.read(declared_length(self.headers, MAX_INVOKE_BYTES))
                except BodyError as err:
                    self.close_connection = True  # the unread body must not be parsed as a request
                    self._send_error(err.status, "ValidationError", {"Message": err.message})
                    return
                match = _RUNTIME_PATH.match(self.path)
                target = self.headers.get("X-Amz-Target")
                if self.path == "/invocations":  # the container's adapter: it picks the headers it forwards
                    answer = self._invoke(body, dict(self.headers.items()))
                    self._send(answer.status, answer.body, answer.content_type)
                elif self.path == "/" and target:
                    self._control(target, body)
                elif match is None:
                    self._send(404, b"not found", "text/plain")
                elif match.group(1) != endpoint.endpoint_name:
                    message = f"Endpoint {match.group(1)} of account {LOCAL_ACCOUNT} not found."
                    self._send_error(400, "ValidationError", {"Message": message})
                else:  # the runtime API: SageMaker forwards some of the caller's headers to the container
                    headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED_HEADERS}
                    answer = self._invoke(body, headers)
                    if answer.status == 200:
                        self._send(200, answer.body, answer.content_type,
                                   {"x-Amzn-Invoked-Production-Variant": endpoint.variant})
                    else:
                        self._send_model_error(answer.status, answer.body.decode("utf-8", "replace"))

            def _control(self, target: str, body: bytes) -> None:
                """A SageMaker control-plane call, in the JSON 1.1 protocol botocore speaks."""
                if target != DESCRIBE_ENDPOINT:
                    message = f"the local endpoint answers {DESCRIBE_ENDPOINT} only, not {target[:100]}"
                    self._send_json11(400, {"__type": "UnknownOperationException", "message": message})
                    return
                try:
                    name = json.loads(body).get("EndpointName")
                except (ValueError, AttributeError):
                    name = None
                if name == endpoint.endpoint_name:
                    self._send_json11(200, endpoint.description())
                else:
                    message = f'Could not find endpoint "{endpoint.arn(str(name))}".'
                    self._send_json11(400, {"__type": "ValidationException", "message": message})

            def _send_json11(self, status: int, payload: dict) -> None:
                self._send(status, json.dumps(payload).encode(), JSON_11)

            def _invoke(self, body: bytes, headers: dict[str, str]) -> Answer:
                endpoint._count_call()
                return endpoint.container.invoke(body, headers)

            def _send_model_error(self, status: int, message: str) -> None:
                side = "client" if status < 500 else "server"
                log_group = f"/aws/sagemaker/Endpoints/{endpoint.endpoint_name}"
                self._send_error(
                    424,
                    "ModelError",
                    {
                        "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
                        "Message": f'Received {side} error ({status}) from primary with message "{message}". '
                        "See the endpoint's log for more information.",
                        "OriginalStatusCode": status,
                        "OriginalMessage": message,
                        "LogStreamArn": f"arn:aws:logs:{endpoint.region}:{LOCAL_ACCOUNT}:log-group:{log_group}",
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


def model_dir_from(path: str | Path, extract_to: Path) -> Path:
    """A model dir from either a model dir or a model.tar.gz (extracted into `extract_to`, as
    the inference container extracts ModelDataUrl into /opt/ml/model)."""
    path = Path(path)
    if path.is_dir():
        return path
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    if not tarfile.is_tarfile(path):
        raise UserError(f"{path} is neither a model dir nor a model.tar.gz")
    if extract_to.exists():
        shutil.rmtree(extract_to)
    extract_to.mkdir(parents=True)
    with tarfile.open(path, "r:gz") as tar:
        tar.extractall(extract_to, filter="data")
    return extract_to
