"""Names and bucket layout of one stack: read by the stack's constructs, the state machine and the CLI.

One home for them, so that a bucket construct, an IAM scope and the pipeline's jobs cannot disagree
on where a run writes or what the endpoint is called.
"""
from __future__ import annotations

from infra.config import Config

#: Output prefix of every job (models, managed debug output, per-job checkpoints).
OUTPUT_PREFIX = "runs"
#: Where a real-time endpoint's SageMaker data capture writes.
DATA_CAPTURE_PREFIX = "capture"


def endpoint_name(cfg: Config) -> str:
    """Fixed per stack, so that the Lambda front door knows it before the first run."""
    return f"{cfg.name}-endpoint"
