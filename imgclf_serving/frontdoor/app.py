"""Lambda handler: `POST /predict` with raw image bytes, `GET /health` with the endpoint status,
`GET /` with the web page (page.html, beside this file).

Checks that cost nothing (content type, empty body, size, top_k) run before InvokeEndpoint is
called. Every answer carries the API Gateway request id (`X-Request-Id` header and `request_id`
in the body), which is also the correlation id of every log line.

Env: ENDPOINT_NAME (required), MAX_BODY_BYTES (raw bytes, default 4,400,000), TOP_K (optional
default from 1 to 1000, else the model's), ENDPOINT_READ_TIMEOUT_SECONDS (optional, above 0 and at
most 11: how long to wait for the model's answer; lower it for a fast model to fail sooner),
CORS_ORIGINS, POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE, and CAPTURE_* (capture.py). A bad TOP_K or
ENDPOINT_READ_TIMEOUT_SECONDS is a deployment fault: logged, answered as 500. boto3 honours
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, which points the unchanged code at a local endpoint.

`POST /predict?explain=1` asks the model for a Grad-CAM heatmap of the top class too
(imgclf_serving/explain.py); `top_k` and `explain` reach the handlers in InvokeEndpoint's
CustomAttributes (`top_k=3;explain=1`), the header SageMaker forwards to the container.

Each prediction also emits its confidence, entropy and class (prediction_metrics.py), answers with
the model's version in X-Model-Version, and may be captured for the drift report (capture.py).
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import capture, prediction_metrics
from .content_types import ACCEPTED_CONTENT_TYPES
from .error_codes import (
    EMPTY_BODY,
    ENDPOINT_UNAVAILABLE,
    INTERNAL_ERROR,
    INVALID_BODY,
    INVALID_PARAMETER,
    MODEL_ERROR,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
)
from .errors import ApiError, from_endpoint_failure

DEFAULT_MAX_BODY_BYTES = 4_400_000  # Lambda's 6 MB sync payload, after base64
MAX_TOP_K = 1000
# API Gateway gives up after 29 s. Two attempts of (2 s connect + 11 s read) plus the standard
# mode's first backoff (at most 1 s) stay under it, so the caller gets our 504, not the gateway's.
RUNTIME_CONFIG = Config(
    connect_timeout=2,
    read_timeout=11,
    retries={"total_max_attempts": 2, "mode": "standard"},
)
CONTROL_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 2, "mode": "standard"})

# Defaults keep a front door without the Powertools env (a local run) working: Metrics refuses to
# flush without a namespace.
SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or "imgclf-frontdoor"
#: The version of the model that answered (model-meta.json `model_version`), also in the body.
MODEL_VERSION_HEADER = "X-Model-Version"
PAGE_FILE = "page.html"
#: The page loads nothing from elsewhere: inline script and style, images from data: and blob: URLs,
#: and calls to its own origin.
PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "img-src data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
logger = Logger(service=SERVICE_NAME)
tracer = Tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "imgclf", service=SERVICE_NAME)


def _cors() -> CORSConfig | None:
    """CORS headers for the origins in CORS_ORIGINS (comma-separated; the stack sets it from
    `api.cors_origins`); none when it is empty, so browsers from other sites are refused."""
    origins = [o.strip() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()]
    if not origins:
        return None
    return CORSConfig(allow_origin=origins[0], extra_origins=origins[1:], expose_headers=["X-Request-Id", MODEL_VERSION_HEADER])


app = APIGatewayRestResolver(cors=_cors())


@functools.cache
def runtime_client():
    """One sagemaker-runtime client per Lambda instance: warm invocations reuse its connections."""
    return boto3.client("sagemaker-runtime", config=RUNTIME_CONFIG.merge(Config(read_timeout=_read_timeout())))


def _read_timeout() -> float:
    """ENDPOINT_READ_TIMEOUT_SECONDS, at most RUNTIME_CONFIG's: a longer wait would let API Gateway
    time out first, and the caller would get the gateway's bare 504 instead of ours."""
    limit = RUNTIME_CONFIG.read_timeout
    raw = os.environ.get("ENDPOINT_READ_TIMEOUT_SECONDS", "").strip()
    if not raw:
        return limit
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= limit:  # a deployment fault: logged, answered as 500
        raise RuntimeError(f"ENDPOINT_READ_TIMEOUT_SECONDS must be a number above 0 and at most {limit}, got {raw[:20]!r}")
    return value


@functools.cache
def s3_client():
    """For the capture (capture.py); one per Lambda instance."""
    return boto3.client("s3", config=CONTROL_CONFIG)


@functools.cache
def sagemaker_client():
    return boto3.client("sagemaker", config=CONTROL_CONFIG)


@app.post("/predict")
@tracer.capture_method
def predict() -> Response:
    event = app.current_event
    content_type = _media_type(event.headers.get("content-type"))
    if content_type not in ACCEPTED_CONTENT_TYPES:
        raise ApiError(
            UNSUPPORTED_MEDIA_TYPE,
            f"content type {content_type or '(none)'!r} is not accepted; "
            f"send the image bytes as one of {', '.join(ACCEPTED_CONTENT_TYPES)}",
        )
    body = _body_bytes(event.body, event.is_base64_encoded)
    limit = _env_int("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
    if len(body) > limit:
        raise ApiError(PAYLOAD_TOO_LARGE, f"the image is {len(body):,} bytes; the limit is {limit:,} bytes")
    top_k = _top_k(event.query_string_parameters)
    explain = _explain(event.query_string_parameters)

    endpoint_name = _endpoint_name()
    request = {"EndpointName": endpoint_name, "Body": body, "ContentType": content_type, "Accept": "application/json"}
    attributes = ([f"top_k={top_k}"] if top_k is not None else []) + (["explain=1"] if explain else [])
    if attributes:
        request["CustomAttributes"] = ";".join(attributes)
    started = time.perf_counter()
    try:
        answer = runtime_client().invoke_endpoint(**request)
    except (ClientError, BotoCoreError) as error:
        logger.warning("endpoint call failed", extra={"endpoint": endpoint_name, "failure": _describe(error)})
        raise from_endpoint_failure(error, endpoint_name) from None
    finally:
        metrics.add_metric(
            name="EndpointLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )
    try:
        result = json.loads(answer["Body"].read())
    except ValueError:
        result = None
    if not isinstance(result, dict):
        logger.error("endpoint answered with something other than a JSON object", extra={"endpoint": endpoint_name})
        raise ApiError(MODEL_ERROR, "the model answered with something that is not a prediction")
    metrics.add_metric(name=prediction_metrics.PREDICTIONS, unit=MetricUnit.Count, value=1)
    logger.info("predicted", extra={"bytes": len(body), "content_type": content_type, "top_k": result.get("top_k")})
    found = prediction_metrics.signals(result)
    headers = {}
    if found is not None:
        prediction_metrics.emit(found, namespace=metrics.namespace, service=SERVICE_NAME)
        headers[MODEL_VERSION_HEADER] = found.model_version
        if capture.sampled():
            _capture(result, found, content_type, body)
    return _json_response(200, result, headers)


def _capture(result: dict, found: prediction_metrics.Signals, content_type: str, image: bytes) -> None:
    """Writes the capture record; a failure is logged and counted, and the caller still gets the answer."""
    request_id = _request_id()
    try:
        when = capture.now()
        data = capture.record(
            request_id=request_id, when=when, result=result, confidence=found.confidence,
            entropy=found.entropy, content_type=content_type, image=image,
        )
        capture.write(capture.object_key(request_id, when), data, s3_client())
    except Exception as error:  # noqa: BLE001 - capture must never fail the request
        logger.warning("capture failed", extra={"failure": _describe(error)})
        metrics.add_metric(name="CaptureFailures", unit=MetricUnit.Count, value=1)


@app.get("/")
def page() -> Response:
    """The web page (page.html): one static file that calls POST /predict on this same origin, so
    it needs no CORS. PAGE_AUTH (the stack's api.auth) tells it whether to ask for an API key."""
    html = _page_html().replace("{{AUTH}}", os.environ.get("PAGE_AUTH", "none"))
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=html,
                    headers={"X-Request-Id": _request_id(), "Cache-Control": "no-cache",
                             "Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"})


@functools.cache
def _page_html() -> str:
    return (Path(__file__).parent / PAGE_FILE).read_text(encoding="utf-8")


@app.get("/health")
@tracer.capture_method
def health() -> Response:
    """The endpoint's status from DescribeEndpoint, without invoking the model."""
    endpoint_name = _endpoint_name()
    try:
        status = sagemaker_client().describe_endpoint(EndpointName=endpoint_name)["EndpointStatus"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("AccessDeniedException", "AccessDenied"):
            logger.warning("not allowed to describe the endpoint", extra={"endpoint": endpoint_name})
            return _json_response(200, {"endpoint": endpoint_name, "status": "Unknown", "detail": "not allowed to describe the endpoint"})
        if code == "ValidationException":
            return _json_response(503, {"endpoint": endpoint_name, "status": "NotFound"})
        logger.warning("describe endpoint failed", extra={"endpoint": endpoint_name, "failure": _describe(error)})
        raise ApiError(ENDPOINT_UNAVAILABLE, "the endpoint status cannot be read right now") from None
    except BotoCoreError as error:
        logger.warning("describe endpoint failed", extra={"endpoint": endpoint_name, "failure": _describe(error)})
        raise ApiError(ENDPOINT_UNAVAILABLE, "the endpoint status cannot be read right now") from None
    return _json_response(200 if status == "InService" else 503, {"endpoint": endpoint_name, "status": status})


@app.exception_handler(ApiError)
def _api_error(error: ApiError) -> Response:
    return _error_response(error)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    logger.exception("unexpected failure")  # the trace goes to the log, never to the caller
    return _error_response(ApiError(INTERNAL_ERROR, "internal error; quote the request id when reporting it"))


@app.not_found
def _no_route(_error: Exception) -> Response:
    event = app.current_event
    return _error_response(
        ApiError(NOT_FOUND, f"no route {event.http_method} {event.path}; use POST /predict")
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    started = time.perf_counter()
    response = app.resolve(event, context)
    metrics.add_metric(name=prediction_metrics.LATENCY, unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
    return response


def _error_response(error: ApiError) -> Response:
    logger.info("refused", extra={"status": error.status, "code": error.code, "reason": error.message})
    with single_metric(
        name=prediction_metrics.ERRORS,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions={prediction_metrics.SERVICE: SERVICE_NAME},
    ) as metric:
        metric.add_dimension(name=prediction_metrics.ERROR_CODE, value=error.code)
    return _json_response(error.status, {"error": {"code": error.code, "message": error.message}})


def _json_response(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    request_id = _request_id()
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps({**payload, "request_id": request_id}),
        headers={"X-Request-Id": request_id, **(headers or {})},
    )


def _request_id() -> str:
    return app.current_event.request_context.request_id or "unknown"


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _body_bytes(body: str | None, is_base64_encoded: bool | None) -> bytes:
    if not body:
        raise ApiError(EMPTY_BODY, "the body is empty; send the image bytes")
    if not is_base64_encoded:
        # API Gateway base64-encodes every binaryMediaTypes body; text here means the bytes were
        # already mangled (or the caller sent text), so no image can be recovered from it.
        raise ApiError(INVALID_BODY, "the body arrived as text, not as binary image bytes")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(INVALID_BODY, "the body is not valid base64") from None


def _top_k(query: dict[str, str] | None) -> int | None:
    """The caller's `?top_k=`, else the deployment's TOP_K, else None (the model's default)."""
    configured = os.environ.get("TOP_K", "").strip()
    default = _valid_top_k(configured) if configured else None
    if configured and default is None:
        # A deployment fault (logged, answered as 500): forwarded, the container's 400 would
        # blame the caller's image.
        raise RuntimeError(f"TOP_K must be an integer from 1 to {MAX_TOP_K}, got {configured[:20]!r}")
    raw = (query or {}).get("top_k")
    if raw is None:
        return default
    value = _valid_top_k(raw)
    if value is None:
        raise ApiError(INVALID_PARAMETER, f"top_k must be an integer from 1 to {MAX_TOP_K}, got {raw[:20]!r}")
    return value


def _explain(query: dict[str, str] | None) -> bool:
    """The caller's `?explain=`: 1 or true asks for the heatmap, 0 or false (or none) does not."""
    raw = (query or {}).get("explain")
    if raw is None:
        return False
    if raw.lower() not in ("1", "true", "0", "false"):
        raise ApiError(INVALID_PARAMETER, f"explain must be 1 or 0, got {raw[:20]!r}")
    return raw.lower() in ("1", "true")


def _valid_top_k(raw: str) -> int | None:
    return int(raw) if re.fullmatch(r"[0-9]{1,4}", raw) and 1 <= int(raw) <= MAX_TOP_K else None


def _endpoint_name() -> str:
    name = os.environ.get("ENDPOINT_NAME", "")
    if not name:
        raise RuntimeError("ENDPOINT_NAME is not set")  # a deployment fault: logged, answered as 500
    return name


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error.response.get('Error', {}).get('Code')}: {error.response.get('Error', {}).get('Message')}"
    return f"{type(error).__name__}: {error}"
