"""The REST API front door and its Lambda."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from aws_cdk.assertions import Match, Template
from stack_samples import ROOT

from infra.api import BINARY_MEDIA_TYPES, REALTIME_CONCURRENCY_PER_INSTANCE, reserved_concurrency
from infra.config import load_config
from infra.frontdoor_bundle import FRONTDOOR_DIR
from infra.gateway_responses import ROUTES


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


def test_the_template_resolves_no_ssm_parameter_so_every_region_can_deploy_it(default):
    # AWS's public parameters (/aws/service/..., e.g. the Powertools layer's) exist in only some
    # regions: a template that reads one synthesizes everywhere and fails to deploy in the others.
    # CDK's own BootstrapVersion parameter is made by `cdk bootstrap` in every region.
    parameters = default.template.get("Parameters", {}).values()
    assert not [p for p in parameters if p["Type"].startswith("AWS::SSM::") and p["Default"].startswith("/aws/service/")]
    assert "Layers" not in default.only("AWS::Lambda::Function")["Properties"]


def _asset_dir(synth):
    code = synth.only("AWS::Lambda::Function")["Properties"]["Code"]
    return synth.outdir / f"asset.{code['S3Key'].split('.')[0]}"


def test_the_lambda_asset_holds_the_front_door_and_the_pinned_powertools(default):
    asset = _asset_dir(default)
    assert sorted(p.name for p in (asset / "frontdoor").iterdir()) == sorted(
        [*(p.name for p in FRONTDOOR_DIR.glob("*.py")), "page.html"]
    )
    pin = re.search(r"^aws-lambda-powertools\[tracer\]==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)[1]
    assert (asset / f"aws_lambda_powertools-{pin}.dist-info").is_dir()
    assert not [p for p in asset.rglob("*") if p.suffix in (".so", ".pyc") or p.name == "__pycache__"]
    # Nothing of the repository beyond the front door: the model code ships in model.tar.gz.
    assert not {"imgclf_serving", "inference.py", "training", "infra"} & {p.name for p in asset.iterdir()}


def test_the_handler_imports_with_the_assets_own_powertools_and_pure_python_wrapt(default, tmp_path):
    """What the Lambda runtime does: the asset first on sys.path, boto3 from the runtime."""
    asset = _asset_dir(default)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from frontdoor import app; import aws_lambda_powertools, wrapt, aws_xray_sdk.core;"
        "from wrapt import __wrapt__;"
        "print(aws_lambda_powertools.__file__, wrapt.__file__, __wrapt__._using_c_extension)"
    )
    env = {**os.environ, "ENDPOINT_NAME": "imgclf-endpoint", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-c", probe, str(asset)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, check=True).stdout.split()
    assert out[0].startswith(str(asset)) and out[1].startswith(str(asset)) and out[2] == "False"


def test_the_serverless_front_door_reserves_the_endpoints_max_concurrency(default):
    fn = default.only("AWS::Lambda::Function")["Properties"]
    assert fn["ReservedConcurrentExecutions"] == default.cfg.endpoint.max_concurrency


def test_the_realtime_front_door_reserves_its_share_of_every_instance(realtime):
    fn = realtime.only("AWS::Lambda::Function")["Properties"]
    assert fn["ReservedConcurrentExecutions"] == realtime.cfg.endpoint.max_capacity * REALTIME_CONCURRENCY_PER_INSTANCE


@pytest.mark.parametrize(("setting", "expected"), [(7, 7), ("off", None)])
def test_the_reserved_concurrency_can_be_set_or_turned_off(setting, expected):
    assert reserved_concurrency(load_config({"api": {"reserved_concurrency": setting}})) == expected


def test_the_docs_give_the_per_instance_figure_the_stack_uses():
    doc = (ROOT / "docs" / "infrastructure.md").read_text()
    assert f"or {REALTIME_CONCURRENCY_PER_INSTANCE} per real-time instance" in doc


def _gateway_responses(synth) -> dict[str, dict]:
    return {r["Properties"]["ResponseType"]: r["Properties"] for r in synth.resources("AWS::ApiGateway::GatewayResponse").values()}


def test_api_gateways_own_errors_answer_in_the_front_doors_error_shape(default):
    responses = _gateway_responses(default)
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "REQUEST_TOO_LARGE", "THROTTLED", "QUOTA_EXCEEDED", "INTEGRATION_TIMEOUT",
            "MISSING_AUTHENTICATION_TOKEN", "INVALID_API_KEY", "ACCESS_DENIED", "BAD_REQUEST_PARAMETERS"} <= set(responses)
    for response in responses.values():  # every template is JSON once API Gateway fills it in
        filled = response["ResponseTemplates"]["application/json"].replace("$context.error.messageString", '"m"')
        assert set(json.loads(filled.replace("$context.requestId", "r-1"))) == {"error", "request_id"}
    throttled = responses["THROTTLED"]
    assert throttled["StatusCode"] == "429"
    body = json.loads(throttled["ResponseTemplates"]["application/json"].replace("$context.requestId", "r-1"))
    assert body == {"error": {"code": "throttled", "message": "too many requests; retry with back-off"}, "request_id": "r-1"}


def test_the_default_families_keep_api_gateways_status_and_message(default):
    default_4xx = _gateway_responses(default)["DEFAULT_4XX"]
    assert "StatusCode" not in default_4xx
    template = default_4xx["ResponseTemplates"]["application/json"]
    body = json.loads(template.replace("$context.error.messageString", '"Forbidden"').replace("$context.requestId", "r-1"))
    assert body == {"error": {"code": "bad_request", "message": "Forbidden"}, "request_id": "r-1"}


def test_a_request_without_content_type_gets_415_like_any_unsupported_type(default):
    missing = _gateway_responses(default)["BAD_REQUEST_PARAMETERS"]
    assert missing["StatusCode"] == "415"
    assert '"code": "unsupported_media_type"' in missing["ResponseTemplates"]["application/json"]


def test_gateway_errors_carry_cors_headers_when_cors_is_configured(realtime, default):
    assert _gateway_responses(realtime)["THROTTLED"]["ResponseParameters"] == {
        "gatewayresponse.header.Access-Control-Allow-Origin": "'https://example.com'"
    }
    assert "ResponseParameters" not in _gateway_responses(default)["THROTTLED"]


def test_the_local_gateway_routes_exactly_the_apis_methods(default, realtime):
    for synth in (default, realtime):
        resources = synth.resources("AWS::ApiGateway::Resource")
        routes = {
            (m["Properties"]["HttpMethod"], _path(resources, m["Properties"]["ResourceId"]))
            for m in synth.resources("AWS::ApiGateway::Method").values()
            if m["Properties"]["HttpMethod"] != "OPTIONS"  # CORS preflight, answered by API Gateway itself
        }
        assert routes == ROUTES


def _path(resources: dict, resource_id: dict) -> str:
    """A method's path: its resource's PathPart, or / for the API's root resource."""
    if "Fn::GetAtt" in resource_id:
        assert resource_id["Fn::GetAtt"][1] == "RootResourceId"
        return "/"
    return "/" + resources[resource_id["Ref"]]["Properties"]["PathPart"]


def _page(synth) -> dict:
    return next(m["Properties"] for m in synth.resources("AWS::ApiGateway::Method").values()
                if m["Properties"]["HttpMethod"] == "GET" and "Fn::GetAtt" in m["Properties"]["ResourceId"])


def test_the_page_opens_without_a_key_with_api_keys_and_the_lambda_tells_it_to_ask_for_one(default):
    page = _page(default)
    assert page["AuthorizationType"] == "NONE" and "ApiKeyRequired" not in page
    assert page["Integration"]["Type"] == "AWS_PROXY"
    assert default.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]["PAGE_AUTH"] == "api_key"


def test_the_page_sits_behind_iam_like_the_api_with_iam_auth(realtime):
    assert _page(realtime)["AuthorizationType"] == "AWS_IAM"
    assert realtime.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]["PAGE_AUTH"] == "iam"


def test_the_page_adds_no_cors_origin_since_it_calls_its_own_origin(default):
    env = default.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert env["CORS_ORIGINS"] == "" and "OPTIONS" not in _methods(default)
    assert all("Access-Control-Allow-Origin" not in json.dumps(r) for r in default.resources("AWS::ApiGateway::GatewayResponse").values())
