"""API Gateway's own error answers, in the front door's error shape (docs/serving.md, "Errors").

Requests that API Gateway refuses before the Lambda runs (no API key, throttled, too large, a
missing Content-Type, an integration timeout) would otherwise reach callers as
`{"message": ...}`. Each response type here answers `{"error": {"code", "message"},
"request_id"}` with a stable code instead. Pure data, no CDK: infra/api.py makes the gateway
responses from it, and the local gateway (imgclf/local/frontdoor.py) answers with the same codes.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayError:
    """`status` None keeps API Gateway's own status for the type (the DEFAULT_* families)."""

    status: int | None
    code: str
    #: Fixed text, or None to pass on API Gateway's own message ($context.error.message).
    message: str | None = None


#: The API's routes (method, path): API Gateway answers any other with MISSING_AUTHENTICATION_TOKEN.
ROUTES = frozenset({("POST", "/predict"), ("GET", "/health")})

UNSUPPORTED_MEDIA_TYPE = (
    "the Content-Type header is missing; send one of image/jpeg, image/png, image/webp, "
    "application/x-image, application/octet-stream"
)

#: API Gateway response type -> what the caller gets.
GATEWAY_ERRORS: dict[str, GatewayError] = {
    # The only required request parameter is the Content-Type header of POST /predict: its absence
    # is the front door's 415, as for any type it does not take.
    "BAD_REQUEST_PARAMETERS": GatewayError(415, "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE),
    "BAD_REQUEST_BODY": GatewayError(400, "invalid_body"),
    "REQUEST_TOO_LARGE": GatewayError(413, "payload_too_large", "the body exceeds API Gateway's 10 MB limit"),
    "THROTTLED": GatewayError(429, "throttled", "too many requests; retry with back-off"),
    "QUOTA_EXCEEDED": GatewayError(429, "quota_exceeded", "this API key's daily quota is used up"),
    # Also what API Gateway answers for a path or method it does not have.
    "MISSING_AUTHENTICATION_TOKEN": GatewayError(
        403, "missing_authentication", "no credentials, or no such route: use POST /predict or GET /health"
    ),
    "INVALID_API_KEY": GatewayError(403, "invalid_api_key", "the x-api-key header is missing or not a key of this API"),
    "ACCESS_DENIED": GatewayError(403, "access_denied"),
    "INVALID_SIGNATURE": GatewayError(403, "invalid_signature"),
    "EXPIRED_TOKEN": GatewayError(403, "expired_token"),
    "INTEGRATION_TIMEOUT": GatewayError(504, "gateway_timeout", "the front door did not answer within 29 s"),
    "INTEGRATION_FAILURE": GatewayError(502, "bad_gateway", "the front door failed; see its logs"),
    "DEFAULT_4XX": GatewayError(None, "bad_request"),
    "DEFAULT_5XX": GatewayError(None, "internal_error"),
}


def template(error: GatewayError) -> str:
    """The application/json mapping template: API Gateway substitutes the $context values."""
    message = "$context.error.messageString" if error.message is None else f'"{error.message}"'
    return (
        f'{{"error": {{"code": "{error.code}", "message": {message}}}, '
        f'"request_id": "$context.requestId"}}'
    )
