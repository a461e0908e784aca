"""A local API Gateway in front of the real Lambda handler (`imgclf_serving/frontdoor/app.py`).

HTTP requests become REST API proxy events as API Gateway builds them (a binary media type's body
base64-encoded with `isBase64Encoded`, headers and multiValueHeaders, query strings, a
requestContext with a fresh requestId), and the handler's proxy response becomes the HTTP answer.
Gateway-side limits are kept: 10 MB payload, Lambda's 6 MB event, the 29 s integration timeout,
answered as the stack's gateway responses answer them: `{"error": {"code", "message"},
"request_id"}`, from the one table of error codes (imgclf_serving/frontdoor/error_codes.py). Like
the REST API, it routes only POST /predict (which requires a Content-Type header), GET /health and GET /
(the web page, imgclf_serving/frontdoor/page.html) to the Lambda.

One Lambda instance: invocations run one at a time. The 29 s count from when an invocation starts,
not from when it was queued (in the cloud, Lambda scales out instead of queueing); a request that
waits 29 s for the instance is answered 504 too, and never runs.

The handler runs in a child process (`python -m imgclf.local.frontdoor`), as a Lambda runs apart
from its caller: its environment (the deployment's, from infra/frontdoor_environment.py, with
ENDPOINT_NAME, AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME and AWS_ENDPOINT_URL_SAGEMAKER pointing at the
local endpoint, dummy credentials) and its log (Powertools JSON lines and metrics, what CloudWatch
would hold) stay out of the CLI. `FrontDoorProcess` starts and stops it; binds 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qsl, urlsplit

from imgclf.errors import UserError
from imgclf.local.http_body import BodyError, declared_length
from infra.gateway_responses import ROUTES
from imgclf_serving.frontdoor.error_codes import GATEWAY_RESPONSES, LOCAL_FRAMING

#: API Gateway REST limits (API Gateway quotas) and Lambda's synchronous event limit.
API_MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
LAMBDA_MAX_EVENT_BYTES = 6 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 29.0
STAGE = "local"
FUNCTION_NAME = "imgclf-frontdoor-local"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, timeout_seconds: float) -> None:
        self.function_name = FUNCTION_NAME
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION_NAME}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{FUNCTION_NAME}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def proxy_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                binary_types: tuple[str, ...], source_ip: str = "127.0.0.1", host: str = "127.0.0.1") -> dict:
    """The REST API (v1) proxy event API Gateway sends for one request."""
    parts = urlsplit(target)
    path = parts.path or "/"
    query = parse_qsl(parts.query, keep_blank_values=True)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in headers:
        single[key] = value  # API Gateway keeps the last value of a repeated header
        multi.setdefault(key, []).append(value)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    binary = content_type.split(";", 1)[0].strip().lower() in binary_types
    now = datetime.now(timezone.utc)
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": _multi(query) or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "accountId": "000000000000",
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent", "")},
            "domainName": host,
            "apiId": "local",
        },
        "body": (base64.b64encode(body).decode("ascii") if binary else body.decode("utf-8", "replace")) if body else None,
        "isBase64Encoded": bool(body) and binary,
    }


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in pairs:
        found.setdefault(key, []).append(value)
    return found


def http_answer(response: object, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy response as HTTP; a malformed one is API Gateway's 502."""
    if not isinstance(response, dict) or not isinstance(response.get("statusCode"), int):
        return gateway_error("INTEGRATION_FAILURE", request_id, "the Lambda function returned a malformed proxy response")
    body = response.get("body") or ""
    payload = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode("utf-8")
    headers = list((response.get("headers") or {}).items())
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers.extend((key, v) for v in values if (key, v) not in headers)
    return response["statusCode"], [(k, str(v)) for k, v in headers], payload


_ERROR_TYPES = {400: "BadRequestException", 403: "MissingAuthenticationTokenException", 411: "BadRequestException",
                413: "RequestTooLongException", 415: "BadRequestException", 502: "InternalServerErrorException",
                504: "IntegrationTimeout"}


def gateway_error(kind: str | int, request_id: str, message: str | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """API Gateway's own answer for a gateway response type (or the status of a request it cannot
    frame: a bad Content-Length, a chunked body), in the API's error shape, with the
    x-amzn-ErrorType header. `message` replaces the type's fixed text."""
    if isinstance(kind, int):
        status, code = kind, LOCAL_FRAMING[kind].error.code
    else:
        response = GATEWAY_RESPONSES[kind]
        status, code, message = response.status, response.error.code, message or response.message
    body = json.dumps({"error": {"code": code, "message": message}, "request_id": request_id}).encode()
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", _ERROR_TYPES[status]),
               ("X-Request-Id", request_id)]
    return status, headers, body


def _refusal(method: str, path: str, headers) -> str | None:
    """What API Gateway answers before the Lambda runs: another route, or POST /predict without
    the Content-Type header its request validator requires."""
    if (method, path.rstrip("/") or "/") not in ROUTES:
        return "MISSING_AUTHENTICATION_TOKEN"
    if method == "POST" and not headers.get("Content-Type"):
        return "BAD_REQUEST_PARAMETERS"
    return None


class _HTTPServer(ThreadingHTTPServer):
    # socketserver's listen backlog of 5 resets connections when more clients than that connect
    # at once (benchmarks/load_frontdoor.py at concurrency 16); API Gateway accepts them all.
    request_queue_size = 128
    daemon_threads = True


class FrontDoorServer:
    """An HTTP server on 127.0.0.1 that invokes `handler` once per request."""

    def __init__(self, handler: Callable[[dict, LambdaContext], dict], binary_types: tuple[str, ...], port: int = 0,
                 timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS) -> None:
        self.handler = handler
        self.binary_types = binary_types
        self.timeout_seconds = timeout_seconds
        self._lambda = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda")
        self._server = _HTTPServer(("127.0.0.1", port), self._handler_class())

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._lambda.shutdown(wait=False, cancel_futures=True)

    def invoke(self, event: dict) -> tuple[int, list[tuple[str, str]], bytes]:
        """One Lambda invocation, answered within the integration timeout counted from its start."""
        request_id = event["requestContext"]["requestId"]
        if len(json.dumps(event)) > LAMBDA_MAX_EVENT_BYTES:
            message = f"the request is over the Lambda function's {LAMBDA_MAX_EVENT_BYTES:,}-byte event limit"
            return gateway_error("REQUEST_TOO_LARGE", request_id, message)
        started = threading.Event()

        def run() -> object:
            started.set()
            return self.handler(event, LambdaContext(self.timeout_seconds))

        future = self._lambda.submit(run)
        timed_out = gateway_error("INTEGRATION_TIMEOUT", request_id,
                                  f"the Lambda function did not answer within {self.timeout_seconds:g} s")
        if not started.wait(self.timeout_seconds) and future.cancel():
            return timed_out  # waited in line for the one instance; cancelled, it never runs
        try:
            return http_answer(future.result(timeout=self.timeout_seconds), request_id)
        except FutureTimeout:
            return timed_out  # the running invocation cannot be stopped: it finishes unheard
        except Exception as err:  # noqa: BLE001 - an unhandled Lambda error is the gateway's 502
            print(f"[ERROR] unhandled Lambda error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            return gateway_error("INTEGRATION_FAILURE", request_id, "the Lambda function failed")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        door = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args) -> None:  # access log, as API Gateway writes one
                print(f"[access] {self.address_string()} {fmt % args}", file=sys.stderr, flush=True)

            def _handle(self) -> None:
                try:
                    body = self.rfile.read(declared_length(self.headers, API_MAX_PAYLOAD_BYTES))
                except BodyError as err:
                    self.close_connection = True  # the unread body must not be parsed as a request
                    kind = "REQUEST_TOO_LARGE" if err.status == 413 else err.status
                    self._send(*gateway_error(kind, str(uuid.uuid4()), err.message))
                    return
                refused = _refusal(self.command, urlsplit(self.path).path, self.headers)
                if refused:
                    self._send(*gateway_error(refused, str(uuid.uuid4())))
                    return
                event = proxy_event(self.command, self.path, list(self.headers.items()), body, door.binary_types,
                                    source_ip=self.client_address[0], host=self.headers.get("Host", "127.0.0.1"))
                self._send(*door.invoke(event))

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


class FrontDoorProcess:
    """Runs the front door in a child process with a Lambda's environment; a context manager."""

    def __init__(self, endpoint_url: str, endpoint_name: str, log_path: Path, port: int = 0,
                 deployment: dict[str, str] | None = None) -> None:
        """`deployment`: the Lambda's environment from the config (infra/frontdoor_environment.py),
        or None for the handler's defaults."""
        self.endpoint_url = endpoint_url
        self.endpoint_name = endpoint_name
        self.log_path = Path(log_path).resolve()  # absolute: the child runs in the repository root
        self.port = port
        self.deployment = deployment or {}
        self.url = ""
        self._proc: subprocess.Popen | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
        env.update(
            {
                "ENDPOINT_NAME": self.endpoint_name,
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.endpoint_url,
                "AWS_ENDPOINT_URL_SAGEMAKER": self.endpoint_url,
                # Dummy credentials: the local endpoint does not check signatures.
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
                "POWERTOOLS_SERVICE_NAME": FUNCTION_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": "imgclf-local",
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.deployment)
        return env

    def start(self) -> "FrontDoorProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        ready = self.log_path.with_suffix(".port")
        ready.unlink(missing_ok=True)
        repo_root = Path(__file__).resolve().parents[2]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "imgclf.local.frontdoor", "--port", str(self.port), "--port-file", str(ready)],
                cwd=repo_root,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not ready.exists():
            exit_code = self._proc.poll()
            if exit_code is not None or time.monotonic() > deadline:
                self.stop()
                why = (f"exited with code {exit_code}" if exit_code is not None
                       else f"did not write its port to {ready} within {START_TIMEOUT_SECONDS:g} s")
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise UserError(f"the local front door {why}; the end of {self.log_path}:\n  " + "\n  ".join(tail))
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{int(ready.read_text())}"
        return self

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> "FrontDoorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """The child process: import the Lambda handler (its cold start) and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description="local API Gateway for the Lambda front door")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    from imgclf_serving.frontdoor import app

    server = FrontDoorServer(app.handler, tuple(app.ACCEPTED_CONTENT_TYPES), port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.port))
    tmp.replace(args.port_file)
    print(f"front door listening on {server.url}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
