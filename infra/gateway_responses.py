"""API Gateway's own error answers, in the front door's error shape (docs/serving.md, "Errors").

Requests that API Gateway refuses before the Lambda runs (no API key, throttled, too large, a
missing Content-Type, an integration timeout) would otherwise reach callers as
`{"message": ...}`. Each response type of GATEWAY_RESPONSES (imgclf_serving/frontdoor/error_codes.py,
the one table of error codes) answers `{"error": {"code", "message"}, "request_id"}` instead.
No CDK: infra/api.py makes the gateway responses, and the local gateway (imgclf/local/frontdoor.py)
reads ROUTES and the same table. docs/infrastructure.md's table is `markdown_table()`.
"""
from __future__ import annotations

from imgclf_serving.frontdoor.error_codes import GATEWAY_RESPONSES, GatewayResponse

#: The API's routes (method, path; `GET /` is the web page): API Gateway answers any other with MISSING_AUTHENTICATION_TOKEN.
ROUTES = frozenset({("POST", "/predict"), ("GET", "/health"), ("GET", "/")})


def template(response: GatewayResponse) -> str:
    """The application/json mapping template: API Gateway substitutes the $context values."""
    message = "$context.error.messageString" if response.message is None else f'"{response.message}"'
    return (
        f'{{"error": {{"code": "{response.error.code}", "message": {message}}}, '
        f'"request_id": "$context.requestId"}}'
    )


def markdown_table() -> str:
    """docs/infrastructure.md's table of the stack's gateway responses."""
    lines = ["| response type | status | code |", "|---|---|---|"]
    for kind, response in GATEWAY_RESPONSES.items():
        status = "API Gateway's" if response.status is None else response.status
        lines.append(f"| `{kind}` | {status} | `{response.error.code}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
