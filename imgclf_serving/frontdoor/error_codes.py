"""Every error the API answers with, defined once.

The front door raises these (errors.py, app.py); the stack turns API Gateway's own refusals into
them (infra/gateway_responses.py, from GATEWAY_RESPONSES); the local gateway answers with the
same ones (imgclf/local/frontdoor.py); docs/serving.md's error table is `markdown_table()` (a test
keeps them equal: `python -m imgclf_serving.frontdoor.error_codes` prints it). Pure data: infra
reads it at synth, and in the Lambda asset this package is the top-level `frontdoor`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .content_types import ACCEPTED_CONTENT_TYPES

FRONT_DOOR = "front door"
HANDLERS = "model handlers"
BOTH = "both"
GATEWAY = "API Gateway"
LOCAL_GATEWAY = "local gateway"


@dataclass(frozen=True)
class ErrorCode:
    """An HTTP status and the stable code a caller can branch on."""

    status: int
    code: str


EMPTY_BODY = ErrorCode(400, "empty_body")
INVALID_BODY = ErrorCode(400, "invalid_body")
INVALID_PARAMETER = ErrorCode(400, "invalid_parameter")
INVALID_IMAGE = ErrorCode(400, "invalid_image")
NOT_FOUND = ErrorCode(404, "not_found")
PAYLOAD_TOO_LARGE = ErrorCode(413, "payload_too_large")
UNSUPPORTED_MEDIA_TYPE = ErrorCode(415, "unsupported_media_type")
INTERNAL_ERROR = ErrorCode(500, "internal_error")
MODEL_ERROR = ErrorCode(502, "model_error")
ENDPOINT_UNAVAILABLE = ErrorCode(503, "endpoint_unavailable")
ENDPOINT_TIMEOUT = ErrorCode(504, "endpoint_timeout")
# API Gateway's own refusals, answered before the Lambda runs.
BAD_REQUEST = ErrorCode(400, "bad_request")
MISSING_AUTHENTICATION = ErrorCode(403, "missing_authentication")
INVALID_API_KEY = ErrorCode(403, "invalid_api_key")
ACCESS_DENIED = ErrorCode(403, "access_denied")
INVALID_SIGNATURE = ErrorCode(403, "invalid_signature")
EXPIRED_TOKEN = ErrorCode(403, "expired_token")
THROTTLED = ErrorCode(429, "throttled")
QUOTA_EXCEEDED = ErrorCode(429, "quota_exceeded")
BAD_GATEWAY = ErrorCode(502, "bad_gateway")
GATEWAY_TIMEOUT = ErrorCode(504, "gateway_timeout")
# The local gateway's framing checks (imgclf/local/http_body.py): API Gateway frames for itself.
INVALID_REQUEST = ErrorCode(400, "invalid_request")
LENGTH_REQUIRED = ErrorCode(411, "length_required")


@dataclass(frozen=True)
class Answer:
    """One row of the error table: who answers with `error`, and when."""

    error: ErrorCode
    by: str
    when: str


@dataclass(frozen=True)
class GatewayResponse:
    """What one API Gateway response type answers. `message` None passes on API Gateway's own
    ($context.error.messageString); `keeps_status` keeps API Gateway's status (the DEFAULT_*
    families, which cover many statuses)."""

    error: ErrorCode
    when: str
    message: str | None = None
    keeps_status: bool = False

    @property
    def status(self) -> int | None:
        return None if self.keeps_status else self.error.status


#: What the Lambda and the model's handlers answer.
ANSWERS: tuple[Answer, ...] = (
    Answer(EMPTY_BODY, FRONT_DOOR, "no body, or an empty one"),
    Answer(INVALID_BODY, FRONT_DOOR, "body not base64-encoded by API Gateway (sent as text), or invalid base64"),
    Answer(INVALID_PARAMETER, FRONT_DOOR, "`top_k` not an integer from 1 to 1000, or `explain` not 1 or 0"),
    Answer(INVALID_IMAGE, HANDLERS, "bytes that are no image (no JPEG/PNG/WebP/GIF signature), a corrupt or truncated image"),
    Answer(NOT_FOUND, FRONT_DOOR, "a route the Lambda does not serve; API Gateway forwards only `POST /predict`, "
           "`GET /health` and `GET /` (the page), so only a direct invocation of the function gets this"),
    Answer(PAYLOAD_TOO_LARGE, BOTH, "body over `MAX_BODY_BYTES` (front door), over 6 MiB (handlers), or an image over "
           "40,000,000 pixels (a decompression bomb: a small file that claims huge dimensions)"),
    Answer(UNSUPPORTED_MEDIA_TYPE, BOTH, "a content type outside the list above (`application/json`, `text/plain`, "
           "`image/gif`, none), or a recognised but unsupported format (BMP, TIFF, HEIC, AVIF, PDF, ...)"),
    Answer(INTERNAL_ERROR, FRONT_DOOR, "a fault in the front door itself (logged with its trace)"),
    Answer(MODEL_ERROR, FRONT_DOOR, "the model failed on the input (container 5xx), or the endpoint refused the call "
           "for another reason"),
    Answer(ENDPOINT_UNAVAILABLE, FRONT_DOOR, "endpoint missing, not in service, still starting, throttled, or unreachable"),
    Answer(ENDPOINT_TIMEOUT, FRONT_DOOR, "no answer within the front door's time budget (below API Gateway's 29 s)"),
)

#: API Gateway response type -> its answer. infra/api.py makes a gateway response of each; the
#: local gateway answers the ones it emulates (routes, Content-Type, size, the 29 s, a failed Lambda).
GATEWAY_RESPONSES: dict[str, GatewayResponse] = {
    # The only required request parameter is the Content-Type header of POST /predict: its absence
    # is the front door's 415, as for any type it does not take.
    "BAD_REQUEST_PARAMETERS": GatewayResponse(
        UNSUPPORTED_MEDIA_TYPE, "`POST /predict` without a Content-Type header (the API's request validator)",
        f"the Content-Type header is missing; send one of {', '.join(ACCEPTED_CONTENT_TYPES)}",
    ),
    "BAD_REQUEST_BODY": GatewayResponse(INVALID_BODY, "a body the request validator refuses"),
    "REQUEST_TOO_LARGE": GatewayResponse(
        PAYLOAD_TOO_LARGE, "a request over API Gateway's 10 MB payload or the Lambda's 6 MB event",
        "the body exceeds API Gateway's 10 MB limit",
    ),
    "THROTTLED": GatewayResponse(THROTTLED, "over the stage's or the usage plan's rate", "too many requests; retry with back-off"),
    "QUOTA_EXCEEDED": GatewayResponse(QUOTA_EXCEEDED, "over the API key's daily quota", "this API key's daily quota is used up"),
    # Also what API Gateway answers for a path or method it does not have.
    "MISSING_AUTHENTICATION_TOKEN": GatewayResponse(
        MISSING_AUTHENTICATION, "another path or method (only `POST /predict`, `GET /health` and `GET /` exist), or no "
        "credentials with IAM auth", "no credentials, or no such route: use POST /predict or GET /health",
    ),
    "INVALID_API_KEY": GatewayResponse(
        INVALID_API_KEY, "the `x-api-key` header is missing or not a key of this API (API-key auth)",
        "the x-api-key header is missing or not a key of this API",
    ),
    "ACCESS_DENIED": GatewayResponse(ACCESS_DENIED, "the caller's IAM identity may not invoke the API (IAM auth)"),
    "INVALID_SIGNATURE": GatewayResponse(INVALID_SIGNATURE, "a SigV4 signature that does not match (IAM auth)"),
    "EXPIRED_TOKEN": GatewayResponse(EXPIRED_TOKEN, "expired credentials (IAM auth)"),
    "INTEGRATION_TIMEOUT": GatewayResponse(
        GATEWAY_TIMEOUT, "no answer from the Lambda function within API Gateway's 29 s",
        "the front door did not answer within 29 s",
    ),
    # Lambda's own throttling (the function at its reserved concurrency) also ends here.
    "INTEGRATION_FAILURE": GatewayResponse(
        BAD_GATEWAY, "the Lambda function failed, returned a malformed response, or was throttled at its "
        "reserved concurrency (`api.reserved_concurrency`)",
        "the front door failed or is at its concurrency limit; retry with back-off",
    ),
    "DEFAULT_4XX": GatewayResponse(BAD_REQUEST, "any other refusal of API Gateway's", keeps_status=True),
    "DEFAULT_5XX": GatewayResponse(INTERNAL_ERROR, "any other failure of API Gateway's", keeps_status=True),
}

#: The local gateway's own refusals, by the status of the framing fault (imgclf/local/http_body.py).
LOCAL_FRAMING: dict[int, Answer] = {
    400: Answer(INVALID_REQUEST, LOCAL_GATEWAY, "a Content-Length that is not one non-negative integer"),
    411: Answer(LENGTH_REQUIRED, LOCAL_GATEWAY, "a chunked body (`Transfer-Encoding`): send a Content-Length"),
}


def rows() -> list[tuple[str, str, str, str]]:
    """(status, code, when, who) for every answer: the front door's, API Gateway's, the local gateway's."""
    found = [(str(a.error.status), a.error.code, a.when, a.by) for a in ANSWERS]
    found += [
        ("API Gateway's" if g.status is None else str(g.status), g.error.code, g.when, f"{GATEWAY} (`{kind}`)")
        for kind, g in GATEWAY_RESPONSES.items()
    ]
    found += [(str(a.error.status), a.error.code, a.when, a.by) for a in LOCAL_FRAMING.values()]
    return found


def markdown_table() -> str:
    """docs/serving.md's error table."""
    lines = ["| status | code | when | who decides |", "|---|---|---|---|"]
    return "\n".join(lines + [f"| {status} | `{code}` | {when} | {who} |" for status, code, when, who in rows()])


if __name__ == "__main__":
    print(markdown_table())
