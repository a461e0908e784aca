"""One source for the front-door Lambda's environment: the stack deploys exactly what the local
engine gives its front door (infra/frontdoor_environment.py), plus the endpoint's name, the page's
auth mode and, with capture on, its bucket and key."""
from __future__ import annotations

import pytest

from infra.frontdoor_environment import frontdoor_environment
from infra.layout import endpoint_name


@pytest.mark.parametrize("variant", ["default", "realtime"])
def test_the_synthesized_lambda_environment_is_the_shared_one_plus_the_endpoint_name(synthesize, variant):
    synth = synthesize(variant)
    deployed = dict(synth.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"])
    # Where capture records go is the stack's (the local engine writes them to a folder).
    destination = {k: deployed.pop(k) for k in ("CAPTURE_BUCKET", "CAPTURE_KMS_KEY_ARN") if k in deployed}
    # The page asks for a key only where API Gateway checks one; the local front door checks none.
    assert deployed.pop("PAGE_AUTH") == synth.cfg.api.auth
    assert deployed == {"ENDPOINT_NAME": endpoint_name(synth.cfg), **frontdoor_environment(synth.cfg)}
    assert bool(destination) == (synth.cfg.monitoring.capture_percent > 0)


def test_the_realtime_variant_carries_its_cors_origins(realtime):
    assert frontdoor_environment(realtime.cfg)["CORS_ORIGINS"] == "https://example.com"
