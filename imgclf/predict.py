"""`imgclf predict IMAGE`: POST an image's bytes to a front door (local or cloud), print the top-k.

The content type comes from the file's real format (its first bytes), as the handlers sniff it;
an API error is shown as the API's own `{"error": {"code", "message"}}` with the HTTP status.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from imgclf.errors import UserError

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 35  # just above API Gateway's 29 s
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="image file (JPEG, PNG, WebP, ...)")
    parser.add_argument("--url", default=os.environ.get("IMGCLF_API_URL", DEFAULT_URL),
                        help="API base URL; POSTs to <url>/predict (default $IMGCLF_API_URL or %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("IMGCLF_API_KEY"),
                        help="API key, sent as x-api-key (default $IMGCLF_API_KEY)")
    parser.add_argument("--top-k", type=int, help="how many labels to return")
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")


def content_type(data: bytes) -> str:
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def predict_url(url: str, top_k: int | None) -> str:
    base = url.rstrip("/")
    target = base if base.endswith("/predict") else f"{base}/predict"
    return f"{target}?top_k={top_k}" if top_k is not None else target


def request_prediction(image: Path, url: str, api_key: str | None = None, top_k: int | None = None) -> dict:
    import urllib.error
    import urllib.request

    try:
        data = image.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {image}: {err.strerror or err}") from None
    headers = {"Content-Type": content_type(data), "Accept": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    target = predict_url(url, top_k)
    request = urllib.request.Request(target, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            status, text = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as err:
        raise UserError(f"cannot reach {target}: {getattr(err, 'reason', err)}") from None
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if status != 200 or not isinstance(answer, dict):
        raise UserError(_describe_error(status, answer, text))
    return answer


def _describe_error(status: int, answer, text: str) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        err = answer["error"]
        request_id = f" (request id {answer['request_id']})" if answer.get("request_id") else ""
        return f"HTTP {status} {err.get('code')}: {err.get('message')}{request_id}"
    if isinstance(answer, dict) and "message" in answer:  # API Gateway's own errors
        hint = " (missing or wrong --api-key?)" if status == 403 else ""
        return f"HTTP {status} from the API gateway: {answer['message']}{hint}"
    return f"HTTP {status}: {text.strip()[:300] or '(empty answer)'}"


def format_predictions(answer: dict) -> str:
    rows = answer.get("predictions") or []
    width = max((len(r["label"]) for r in rows), default=5)
    lines = [f"{r['label']:<{width}}  {r['score']:.4f}" for r in rows]
    model = answer.get("model") or {}
    if model:
        lines.append(f"(model {model.get('name')} {model.get('version')})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.top_k is not None and args.top_k < 1:
        raise UserError("--top-k must be at least 1")
    answer = request_prediction(args.image, args.url, args.api_key, args.top_k)
    print(json.dumps(answer, indent=2) if args.json else format_predictions(answer))
    return 0
