"""The pipeline's state machine, built by stage: input, tune, retrain (and managed rules), gate,
deploy; in the words of `vocabulary` and the placeholders of `placeholders`. `definition` puts
the stages together."""
from infra.state_machine.definition import build_definition, timeout_seconds
from infra.state_machine.deployment import Deployment

__all__ = ["Deployment", "build_definition", "timeout_seconds"]
