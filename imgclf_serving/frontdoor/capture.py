"""Writes a sample of predictions to S3 (or a local folder) for the drift report.

SageMaker's own data capture does not work on serverless endpoints, our default, so the front
door, which every request passes, keeps the sample. A record is one JSON object: the request id,
the time, the model and its version, top_k, the predictions, the top-1 confidence and entropy, the
content type and size; the image (base64) only with CAPTURE_IMAGES on, and only while the record
stays under CAPTURE_MAX_BYTES. A failed write is logged and counted, never the caller's problem.

Env (set by the stack from `monitoring.*`, infra/frontdoor_environment.py): CAPTURE_PERCENT (0
off), CAPTURE_BUCKET, CAPTURE_PREFIX, CAPTURE_IMAGES, CAPTURE_MAX_BYTES, CAPTURE_KMS_KEY_ARN (SSE-KMS
with the stack's key; without it the bucket's default encryption applies). CAPTURE_LOCAL_DIR, set
by the local front door, writes the same records under that folder instead of S3.
"""
from __future__ import annotations

import base64
import json
import os
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: Under the bucket's (or local folder's) root; the report reads the same prefix.
DEFAULT_PREFIX = "monitoring/capture"
DEFAULT_MAX_BYTES = 262_144


def percent() -> float:
    raw = os.environ.get("CAPTURE_PERCENT", "").strip()
    return float(raw) if raw else 0.0


def sampled() -> bool:
    """Whether this request is in the sample (a uniform draw against CAPTURE_PERCENT)."""
    share = percent()
    return share > 0 and random.random() * 100 < share


def object_key(request_id: str, when: datetime) -> str:
    """`<prefix>/YYYY/MM/DD/HH/<request id>.json`: the report lists a time range by its hours."""
    prefix = os.environ.get("CAPTURE_PREFIX", DEFAULT_PREFIX).strip("/")
    safe_id = "".join(c for c in request_id if c.isalnum() or c in "-_")[:64] or "unknown"
    return f"{prefix}/{when:%Y/%m/%d/%H}/{safe_id}.json"


def record(
    *, request_id: str, when: datetime, result: dict[str, Any], confidence: float, entropy: float,
    content_type: str, image: bytes,
) -> bytes:
    """The capture record, at most CAPTURE_MAX_BYTES: the image goes first when it does not fit,
    then predictions from the bottom of the top k."""
    limit = int(os.environ.get("CAPTURE_MAX_BYTES", "") or DEFAULT_MAX_BYTES)
    body: dict[str, Any] = {
        "request_id": request_id,
        "time": when.isoformat(),
        "model": result.get("model"),
        "top_k": result.get("top_k"),
        "predictions": list(result.get("predictions") or []),
        "confidence": confidence,
        "entropy": entropy,
        "content_type": content_type,
        "bytes": len(image),
    }
    if os.environ.get("CAPTURE_IMAGES", "").lower() == "true":
        body["image_base64"] = base64.b64encode(image).decode("ascii")
    encoded = json.dumps(body).encode()
    if len(encoded) > limit and "image_base64" in body:
        del body["image_base64"]
        body["image_omitted"] = f"the record would exceed CAPTURE_MAX_BYTES ({limit:,})"
        encoded = json.dumps(body).encode()
    while len(encoded) > limit and len(body["predictions"]) > 1:
        body["predictions"] = body["predictions"][: len(body["predictions"]) // 2]
        body["predictions_truncated"] = True
        encoded = json.dumps(body).encode()
    return encoded


def write(key: str, data: bytes, s3_client: Any) -> None:
    """Puts the record at `key`: in CAPTURE_LOCAL_DIR when set, else in CAPTURE_BUCKET."""
    local = os.environ.get("CAPTURE_LOCAL_DIR", "").strip()
    if local:
        path = Path(local) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    bucket = os.environ.get("CAPTURE_BUCKET", "").strip()
    if not bucket:
        raise RuntimeError("CAPTURE_PERCENT is set but CAPTURE_BUCKET is not")
    request = {"Bucket": bucket, "Key": key, "Body": data, "ContentType": "application/json"}
    kms_key = os.environ.get("CAPTURE_KMS_KEY_ARN", "").strip()
    if kms_key:
        request.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key, BucketKeyEnabled=True)
    s3_client.put_object(**request)


def now() -> datetime:
    return datetime.now(timezone.utc)
