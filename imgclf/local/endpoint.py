"""A local SageMaker endpoint: the real handlers behind the container and runtime HTTP contracts.

The model's own `code/inference.py` runs through the inference toolkit's `DefaultHandlerService`,
driven the way TorchServe drives it in the container (one worker context whose request headers are
swapped in per call, calls serialised), with `model_dir/code` first on sys.path. The server answers
the container contract (`GET /ping`, `POST /invocations`) and the runtime API path that boto3's
`invoke_endpoint` calls (`POST /endpoints/{name}/invocations`). On the runtime path a container
error comes back as SageMaker wraps it, so callers (the front door) handle it as in the cloud:
HTTP 424 `ModelError` with OriginalStatusCode/OriginalMessage; an unknown endpoint name is a 400
`ValidationError`. It also answers the control-plane `DescribeEndpoint` (JSON 1.1, `POST /` with
`X-Amz-Target: SageMaker.DescribeEndpoint`) as InService, so the front door's `GET /health` works
against it. A body's Content-Length is checked before the body is read. Binds 127.0.0.1 only.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from imgclf.errors import UserError
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


class _RequestProcessor:
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class _WorkerContext:
    """The parts of TorchServe's `ts.context.Context` that the toolkit uses."""

    def __init__(self, model_dir: str) -> None:
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [_RequestProcessor({})]
        self.status: tuple[int, str] | None = None
        self.content_type: str | None = None

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status = (code, phrase)

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_type = value


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: bytes


class HandlerService:
    """`DefaultHandlerService` over a model dir; model_fn runs once, here."""

    def __init__(self, model_dir: str | Path) -> None:
        from sagemaker_inference.default_handler_service import DefaultHandlerService

        model_dir = Path(model_dir).resolve()
        if not (model_dir / "code" / "inference.py").is_file():
            raise UserError(f"{model_dir} is not a model dir: code/inference.py is missing")
        code_dir = str(model_dir / "code")
        if code_dir not in sys.path:
            sys.path.insert(0, code_dir)
        self.model_dir = model_dir
        self._lock = threading.Lock()
        self._context = _WorkerContext(str(model_dir))
        self._service = DefaultHandlerService()
        try:
            self._service.initialize(self._context)
        except Exception as err:  # noqa: BLE001 - model_fn's errors name the bad file
            raise UserError(f"cannot load the model in {model_dir}: {err}") from None

    def invoke(self, body: bytes, headers: dict[str, str]) -> Answer:
        with self._lock:
            self._context.request_processor = [_RequestProcessor(dict(headers))]
            self._context.status = None
            self._context.content_type = None
            result = self._service.handle([{"body": body}], self._context)
            status = self._context.status[0] if self._context.status else 200
            payload = result[0]
            if isinstance(payload, str):
                payload = payload.encode("utf-8")
            return Answer(status=status, content_type=self._context.content_type, body=bytes(payload))


class EndpointServer:
    """Serve a HandlerService as endpoint `endpoint_name` on 127.0.0.1; a context manager."""

    def __init__(self, service: HandlerService, endpoint_name: str, port: int = 0,
                 variant: str = "AllTraffic", region: str = "us-east-1") -> None:
        self.service = service
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
                    self._send(200, b'{"status": "Healthy"}\n', "application/json")
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
                if self.path == "/invocations":
                    answer = self._invoke(body)
                    self._send(answer.status, answer.body, answer.content_type or "text/plain")
                elif self.path == "/" and target:
                    self._control(target, body)
                elif match is None:
                    self._send(404, b"not found", "text/plain")
                elif match.group(1) != endpoint.endpoint_name:
                    message = f"Endpoint {match.group(1)} of account {LOCAL_ACCOUNT} not found."
                    self._send_error(400, "ValidationError", {"Message": message})
                else:
                    answer = self._invoke(body)
                    if answer.status == 200:
                        self._send(200, answer.body, answer.content_type or "application/json",
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

            def _invoke(self, body: bytes) -> Answer:
                endpoint._count_call()
                headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED_HEADERS}
                return endpoint.service.invoke(body, headers)

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


def apply_container_environment(environment: dict[str, str]) -> None:
    """The model's container Environment (TOP_K, SAGEMAKER_PROGRAM, ...) as the endpoint sees it;
    the submit directory is the container's own path, so the model dir's code/ is used instead."""
    for key, value in environment.items():
        if key != "SAGEMAKER_SUBMIT_DIRECTORY":
            os.environ[key] = value


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
