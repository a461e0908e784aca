"""The REST API front door and its Lambda."""
from __future__ import annotations

from aws_cdk.assertions import Match, Template

from infra.api import BINARY_MEDIA_TYPES


def _methods(synth) -> dict[str, dict]:
    return {m["Properties"]["HttpMethod"]: m["Properties"] for m in synth.resources("AWS::ApiGateway::Method").values()}


def test_image_types_are_binary_media_types(default):
    assert default.only("AWS::ApiGateway::RestApi")["Properties"]["BinaryMediaTypes"] == list(BINARY_MEDIA_TYPES)


def test_predict_requires_an_api_key_by_default(default):
    post = _methods(default)["POST"]
    assert post["ApiKeyRequired"] is True
    assert post["Integration"]["Type"] == "AWS_PROXY"


def test_predict_requires_sigv4_with_iam_auth(realtime):
    post = _methods(realtime)["POST"]
    assert post["AuthorizationType"] == "AWS_IAM"
    assert "ApiKeyRequired" not in post


def test_the_usage_plan_throttles_and_sets_a_daily_quota(default):
    plan = default.only("AWS::ApiGateway::UsagePlan")["Properties"]
    assert plan["Throttle"] == {"RateLimit": default.cfg.api.rate_limit, "BurstLimit": default.cfg.api.burst_limit}
    assert plan["Quota"] == {"Limit": default.cfg.api.quota_per_day, "Period": "DAY"}
    assert len(default.resources("AWS::ApiGateway::UsagePlanKey")) == 1


def test_iam_auth_has_no_api_key(realtime):
    assert not realtime.resources("AWS::ApiGateway::ApiKey")
    assert not realtime.resources("AWS::ApiGateway::UsagePlan")


def test_the_stage_logs_access_and_traces(default):
    Template.from_json(default.template).has_resource_properties(
        "AWS::ApiGateway::Stage",
        {"TracingEnabled": True, "AccessLogSetting": {"DestinationArn": Match.any_value(), "Format": Match.any_value()}},
    )


def test_predict_requires_a_content_type_and_is_validated(default):
    post = _methods(default)["POST"]
    assert post["RequestParameters"] == {"method.request.header.Content-Type": True}
    assert "RequestValidatorId" in post


def test_cors_preflight_answers_the_configured_origins(realtime):
    options = _methods(realtime)["OPTIONS"]
    headers = options["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
    assert headers["method.response.header.Access-Control-Allow-Origin"] == "'https://example.com'"


def test_no_cors_preflight_without_origins(default):
    assert "OPTIONS" not in _methods(default)


def test_the_lambda_runs_the_front_door_with_its_environment(default):
    fn = default.only("AWS::Lambda::Function")["Properties"]
    assert fn["Handler"] == "frontdoor.app.handler"
    assert fn["TracingConfig"] == {"Mode": "Active"}
    env = fn["Environment"]["Variables"]
    assert env["ENDPOINT_NAME"] == "imgclf-endpoint"
    assert set(env) >= {"TOP_K", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "CORS_ORIGINS"}


def test_a_serverless_endpoint_caps_the_body_at_its_4_mb_payload_limit(default):
    env = default.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert default.cfg.api.max_body_bytes > 4_000_000
    assert env["MAX_BODY_BYTES"] == "4000000"


def test_a_realtime_endpoint_keeps_the_configured_body_cap(realtime):
    env = realtime.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert env["MAX_BODY_BYTES"] == str(realtime.cfg.api.max_body_bytes)


def test_powertools_comes_from_awss_public_ssm_parameter(default):
    parameters = default.template["Parameters"]
    (name,) = [k for k in parameters if k.startswith("SsmParameterValueawsservicepowertools")]
    assert parameters[name]["Default"] == "/aws/service/powertools/python/arm64/python3.14/latest"
    assert default.only("AWS::Lambda::Function")["Properties"]["Layers"] == [{"Ref": name}]


def test_the_lambda_asset_holds_only_the_front_door(default):
    code = default.only("AWS::Lambda::Function")["Properties"]["Code"]
    asset = default.outdir / f"asset.{code['S3Key'].split('.')[0]}"
    assert sorted(p.name for p in asset.iterdir()) == ["frontdoor"]
