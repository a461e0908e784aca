"""The front-door Lambda's environment, from the config: one source for the stack and the local engine.

CDK-free, so that `imgclf local` builds the local front door's environment without starting jsii.
The endpoint name is left out: the stack names the deployed endpoint, the local engine its own. So is
PAGE_AUTH: the stack sets it to api.auth, while the local front door checks no key (the page asks none).
"""
from __future__ import annotations

from infra.config import Config
from infra.layout import FRONTDOOR_CAPTURE_PREFIX

#: Serverless endpoints take at most 4 MB per request (real-time: 6 MB, above the Lambda's own cap).
SERVERLESS_MAX_PAYLOAD_BYTES = 4_000_000
METRICS_NAMESPACE = "imgclf"


def max_body_bytes(cfg: Config) -> int:
    """The largest image the front door forwards: the configured cap, within what the endpoint takes."""
    if cfg.endpoint.mode == "serverless":
        return min(cfg.api.max_body_bytes, SERVERLESS_MAX_PAYLOAD_BYTES)
    return cfg.api.max_body_bytes


def frontdoor_environment(cfg: Config) -> dict[str, str]:
    """Every variable imgclf_serving/frontdoor/app.py reads from the config, except ENDPOINT_NAME."""
    return {
        "MAX_BODY_BYTES": str(max_body_bytes(cfg)),
        "TOP_K": str(cfg.endpoint.top_k),
        "POWERTOOLS_SERVICE_NAME": f"{cfg.name}-frontdoor",
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "CORS_ORIGINS": ",".join(cfg.api.cors_origins),
        # Where the records go (the bucket, the key) is the stack's or the local engine's to add.
        "CAPTURE_PERCENT": f"{cfg.monitoring.capture_percent:g}",
        "CAPTURE_IMAGES": str(cfg.monitoring.capture_images).lower(),
        "CAPTURE_MAX_BYTES": str(cfg.monitoring.capture_max_bytes),
        "CAPTURE_PREFIX": FRONTDOOR_CAPTURE_PREFIX,
    }
