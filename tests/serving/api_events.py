"""API Gateway REST proxy events, in the shape API Gateway sends them to a Lambda proxy
integration, and a Lambda context object for calling the handler directly."""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field


def proxy_event(
    body: bytes | str | None,
    content_type: str | None = "image/jpeg",
    *,
    base64_encoded: bool = True,
    method: str = "POST",
    path: str = "/predict",
    query: dict[str, str] | None = None,
) -> dict:
    """bytes are base64-encoded (binaryMediaTypes), a str is sent as is."""
    request_id = str(uuid.uuid4())
    headers = {
        "Accept": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "X-Amzn-Trace-Id": "Root=1-65f1a2b3-0123456789abcdef01234567",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    if content_type is not None:
        headers["content-type"] = content_type
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode("ascii") if base64_encoded else body.decode("latin-1")
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "a1b2c3",
            "resourcePath": path,
            "httpMethod": method,
            "extendedRequestId": "Ab1CdEfGhIjKlMn=",
            "requestTime": "25/Nov/2026:10:00:00 +0000",
            "path": f"/prod{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1795600800000,
            "requestId": request_id,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0", "apiKeyId": "k1"},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
        },
        "body": body,
        "isBase64Encoded": base64_encoded if body is not None else False,
    }


@dataclass
class LambdaContext:
    function_name: str = "imgclf-frontdoor"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:imgclf-frontdoor"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/imgclf-frontdoor"
    log_stream_name: str = "2026/11/25/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000
