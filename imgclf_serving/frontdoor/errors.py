"""The front door's error answers, and how an endpoint failure becomes one of them.

Callers see `{"error": {"code", "message"}}` with a status from a short list (docs/serving.md).
The endpoint's own 4xx (our handlers' typed errors: 400, 413, 415) pass through with the first
line of the container's message, which is the handler's one-line message (the toolkit appends a
traceback after it, which never leaves this module). Everything else the model or endpoint does
wrong becomes 502, 503 or 504 with a message of our own.
"""
from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

CODES = {
    400: "invalid_request",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    502: "model_error",
    503: "endpoint_unavailable",
    504: "endpoint_timeout",
}
_PASSED_THROUGH = {400: "invalid_image", 413: "payload_too_large", 415: "unsupported_media_type"}
_UNAVAILABLE = {"ModelNotReadyException", "ServiceUnavailable", "ThrottlingException"}
_MAX_MESSAGE = 300


class ApiError(Exception):
    """An answer other than 200: status, stable code, and a message safe to show a caller."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or CODES[status]
        self.message = message


def from_endpoint_failure(error: Exception, endpoint_name: str) -> ApiError:
    """Map what InvokeEndpoint raised to the caller's answer."""
    if isinstance(error, ReadTimeoutError):
        return ApiError(504, f"the endpoint {endpoint_name} did not answer in time; try again")
    if isinstance(error, (ConnectTimeoutError, EndpointConnectionError)):
        return ApiError(503, "the prediction service cannot be reached; try again shortly")
    if not isinstance(error, ClientError):
        return ApiError(502, "the prediction service failed")
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    if code == "ModelError":
        return _from_model_error(error.response)
    if code in _UNAVAILABLE:
        return ApiError(503, f"the endpoint {endpoint_name} is busy or still starting; try again shortly")
    if code == "ValidationError" and "not found" in message.lower():
        return ApiError(503, f"the endpoint {endpoint_name} does not exist (yet); deploy it first")
    return ApiError(502, "the prediction service rejected the request")


def _from_model_error(response: dict) -> ApiError:
    """A container answer other than 200, as SageMaker's ModelError carries it."""
    status = response.get("OriginalStatusCode")
    if status in _PASSED_THROUGH:
        first_line = (response.get("OriginalMessage") or "").strip().splitlines()[:1]
        message = first_line[0][:_MAX_MESSAGE] if first_line else "the model refused the image"
        return ApiError(status, message, _PASSED_THROUGH[status])
    if status in (429, 503):
        return ApiError(503, "the model is busy; try again shortly")
    return ApiError(502, "the model failed to process the image")
