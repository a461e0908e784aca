"""One source for the front-door Lambda's environment: the stack deploys exactly what the local
engine gives its front door (infra/frontdoor_environment.py), plus the endpoint's name."""
from __future__ import annotations

import pytest

from infra.frontdoor_environment import frontdoor_environment
from infra.layout import endpoint_name


@pytest.mark.parametrize("variant", ["default", "realtime"])
def test_the_synthesized_lambda_environment_is_the_shared_one_plus_the_endpoint_name(synthesize, variant):
    synth = synthesize(variant)
    deployed = synth.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert deployed == {"ENDPOINT_NAME": endpoint_name(synth.cfg), **frontdoor_environment(synth.cfg)}


def test_the_realtime_variant_carries_its_cors_origins(realtime):
    assert frontdoor_environment(realtime.cfg)["CORS_ORIGINS"] == "https://example.com"
