"""The front door's error answers, and how an endpoint failure becomes one of them.

Callers see `{"error": {"code", "message"}}` with a status and code from error_codes.py.
The endpoint's own 4xx (our handlers' typed errors: 400, 413, 415) pass through with the
handler's one-line message: the `error` of the Ray Serve container's JSON answer, or the first line
of the TorchServe container's text (its toolkit appends a traceback, which never leaves this module). Everything else the model or endpoint does
wrong becomes 502, 503 or 504 with a message of our own.
"""
from __future__ import annotations

import json

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from .error_codes import (
    ENDPOINT_TIMEOUT,
    ENDPOINT_UNAVAILABLE,
    INVALID_IMAGE,
    MODEL_ERROR,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    ErrorCode,
)

#: The container's refusals that blame the request, passed on with their own status.
_PASSED_THROUGH = {e.status: e for e in (INVALID_IMAGE, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE)}
_UNAVAILABLE = {"ModelNotReadyException", "ServiceUnavailable", "ThrottlingException"}
_MAX_MESSAGE = 300


class ApiError(Exception):
    """An answer other than 200: its error code (status and code), and a message safe to show a caller."""

    def __init__(self, error: ErrorCode, message: str):
        super().__init__(message)
        self.status = error.status
        self.code = error.code
        self.message = message


def from_endpoint_failure(error: Exception, endpoint_name: str) -> ApiError:
    """Map what InvokeEndpoint raised to the caller's answer."""
    if isinstance(error, ReadTimeoutError):
        return ApiError(ENDPOINT_TIMEOUT, f"the endpoint {endpoint_name} did not answer in time; try again")
    if isinstance(error, (ConnectTimeoutError, EndpointConnectionError)):
        return ApiError(ENDPOINT_UNAVAILABLE, "the prediction service cannot be reached; try again shortly")
    if not isinstance(error, ClientError):
        return ApiError(MODEL_ERROR, "the prediction service failed")
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    if code == "ModelError":
        return _from_model_error(error.response)
    if code in _UNAVAILABLE:
        return ApiError(ENDPOINT_UNAVAILABLE, f"the endpoint {endpoint_name} is busy or still starting; try again shortly")
    if code == "ValidationError" and "not found" in message.lower():
        return ApiError(ENDPOINT_UNAVAILABLE, f"the endpoint {endpoint_name} does not exist (yet); deploy it first")
    return ApiError(MODEL_ERROR, "the prediction service rejected the request")


def _from_model_error(response: dict) -> ApiError:
    """A container answer other than 200, as SageMaker's ModelError carries it."""
    status = response.get("OriginalStatusCode")
    if status in _PASSED_THROUGH:
        message = _handler_message(response.get("OriginalMessage") or "")[:_MAX_MESSAGE]
        return ApiError(_PASSED_THROUGH[status], message or "the model refused the image")
    if status in (429, 503):
        return ApiError(ENDPOINT_UNAVAILABLE, "the model is busy; try again shortly")
    return ApiError(MODEL_ERROR, "the model failed to process the image")


def _handler_message(original: str) -> str:
    """The handler's message in a container's error body: `{"error": message}` (Ray Serve), else
    the first line (TorchServe's toolkit writes the message, then the traceback)."""
    try:
        error = json.loads(original).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, str):
        return error.strip()
    lines = original.strip().splitlines()
    return lines[0] if lines else ""
