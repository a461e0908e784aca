"""The SageMaker quota each create call of a run can run into, in words for the Fail cause.

New accounts often have a quota of 0 for GPU and spot training instances, so a first run may be
refused before anything starts. SageMaker's own message names the exact quota too; these say
which config fields ask for it.
"""
from __future__ import annotations

from infra.config import Config


def _training_quota(cfg: Config, instance_type: str, instances: int, fields: str) -> str:
    """The per-instance-type training quota, "<type> for [spot ]training job usage". (Double
    quotes: the text goes into a States.Format literal, where a single quote needs escaping.)"""
    spot = "spot " if cfg.training.spot else ""
    return (
        f'"{instance_type} for {spot}training job usage" must allow {instances} instance(s) at once '
        f"({fields}, training.spot = {str(cfg.training.spot).lower()})"
    )


def tuning_quota(cfg: Config) -> str:
    t = cfg.training
    fields = f"training.tuning_instance_type = {t.tuning_instance_type}, tuning.max_parallel_jobs = {cfg.tuning.max_parallel_jobs}"
    return _training_quota(cfg, t.tuning_instance_type, cfg.tuning.max_parallel_jobs, fields)


def retrain_quota(cfg: Config) -> str:
    return _training_quota(cfg, cfg.training.instance_type, 1, f"training.instance_type = {cfg.training.instance_type}")


def endpoint_quota(cfg: Config) -> str:
    """Real-time: the per-instance-type endpoint quota (an update briefly runs the old and the new
    instances side by side). Serverless: the account's serverless concurrency."""
    ep = cfg.endpoint
    if ep.mode == "realtime":
        return (
            f'"{ep.instance_type} for endpoint usage" must allow {ep.initial_instance_count} instance(s) '
            f"(endpoint.instance_type = {ep.instance_type}, endpoint.initial_instance_count = {ep.initial_instance_count}), "
            "twice that during an update"
        )
    return (
        "the serverless endpoint quotas must allow the concurrency of this endpoint "
        f"(endpoint.max_concurrency = {ep.max_concurrency}, endpoint.memory_mb = {ep.memory_mb})"
    )


def model_quota() -> str:
    return "the number of SageMaker models or endpoint configs in the account (delete old ones: each run makes one of each)"
