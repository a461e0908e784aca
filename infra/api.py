"""The public front door: REST API -> Lambda (imgclf_serving/frontdoor) -> SageMaker InvokeEndpoint.

Images travel as binary: `binaryMediaTypes` makes API Gateway hand the Lambda a base64 body
(`isBase64Encoded: true`). Auth is on: an API key with a usage plan (throttle + daily quota), or
IAM (SigV4). Access logs, execution logs and X-Ray tracing are on. The request-size guard is the
Lambda's MAX_BODY_BYTES (API Gateway's own hard limit is 10 MB; Lambda's sync payload, 6 MB).
"""
from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, IgnoreMode, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra import roles
from infra.config import Config
from infra.gateway_responses import GATEWAY_ERRORS
from infra.gateway_responses import template as gateway_template
from infra.frontdoor_environment import frontdoor_environment
from infra.layout import endpoint_name
from imgclf_serving.frontdoor.content_types import BINARY_MEDIA_TYPES

SERVING_DIR = Path(__file__).resolve().parents[1] / "imgclf_serving"
HANDLER = "frontdoor.app.handler"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
#: AWS's public SSM parameter holding the newest Powertools for AWS Lambda (Python) v3 layer ARN
#: for an architecture and runtime; resolved by CloudFormation at deploy time, no lookup at synth.
POWERTOOLS_PARAMETER = "/aws/service/powertools/python/arm64/python3.14/latest"
#: API Gateway's default integration timeout; the Lambda's SageMaker read timeout stays below it.
TIMEOUT = Duration.seconds(29)
STAGE = "prod"


class FrontDoor(Construct):
    """`api`, `function`, and `api_key` (None with IAM auth)."""

    def __init__(self, scope: Construct, construct_id: str, *, cfg: Config) -> None:
        super().__init__(scope, construct_id)
        self.function = self._function(cfg)
        self.api = self._rest_api(cfg)
        integration = apigw.LambdaIntegration(self.function, proxy=True, timeout=TIMEOUT)
        auth = (
            {"api_key_required": True}
            if cfg.api.auth == "api_key"
            else {"authorization_type": apigw.AuthorizationType.IAM}
        )
        # Body validation checks a request model where a method has one; the image methods have
        # none (binary), so what is enforced is the required Content-Type header. Its absence is
        # answered 415 unsupported_media_type (infra/gateway_responses.py), as the Lambda answers
        # a type it does not take.
        validator = self.api.add_request_validator(
            "Validate", validate_request_parameters=True, validate_request_body=True
        )
        self.api.root.add_resource("predict").add_method(
            "POST",
            integration,
            request_validator=validator,
            request_parameters={"method.request.header.Content-Type": True},
            **auth,
        )
        self.api.root.add_resource("health").add_method("GET", integration, request_validator=validator, **auth)
        self.api_key = self._usage_plan(cfg) if cfg.api.auth == "api_key" else None
        self._gateway_responses(cfg)

    def _function(self, cfg: Config) -> lambda_.Function:
        role = roles.front_door_role(self, "Role", cfg=cfg)
        log_group = logs.LogGroup(self, "FunctionLogs", retention=logs.RetentionDays.THREE_MONTHS, removal_policy=RemovalPolicy.DESTROY)
        log_group.grant_write(role)
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", ssm.StringParameter.value_for_string_parameter(self, POWERTOOLS_PARAMETER)
        )
        return lambda_.Function(
            self,
            "Function",
            description=f"{cfg.name}: image bytes -> SageMaker endpoint -> top-k labels",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            # Only imgclf_serving/frontdoor/ ships: the model code lives in the endpoint's model.tar.gz.
            code=lambda_.Code.from_asset(
                str(SERVING_DIR),
                exclude=["*", "!frontdoor/", "!frontdoor/**", "**/__pycache__/", "**/*.pyc"],
                ignore_mode=IgnoreMode.GIT,
            ),
            layers=[powertools],
            role=role,
            log_group=log_group,
            memory_size=256,
            timeout=TIMEOUT,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=cfg.api.reserved_concurrency,
            environment={"ENDPOINT_NAME": endpoint_name(cfg), **frontdoor_environment(cfg)},
        )

    def _rest_api(self, cfg: Config) -> apigw.RestApi:
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.THREE_MONTHS, removal_policy=RemovalPolicy.DESTROY)
        cors = (
            apigw.CorsOptions(
                allow_origins=list(cfg.api.cors_origins),
                allow_methods=["POST", "GET", "OPTIONS"],
                allow_headers=["Content-Type", "X-Api-Key", "Authorization", "X-Amz-Date", "X-Amz-Security-Token"],
            )
            if cfg.api.cors_origins
            else None
        )
        return apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{cfg.name}-api",
            description=f"{cfg.name}: POST /predict with image bytes",
            binary_media_types=list(BINARY_MEDIA_TYPES),
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Access logging needs the account-level API Gateway CloudWatch role.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            default_cors_preflight_options=cors,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True,
                ),
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                throttling_rate_limit=cfg.api.rate_limit,
                throttling_burst_limit=cfg.api.burst_limit,
            ),
        )

    def _gateway_responses(self, cfg: Config) -> None:
        """API Gateway's own refusals in the front door's error shape, with CORS headers so that a
        browser can read them. One origin is answered as is; several are echoed from the request's
        Origin (these bodies carry no data), since a gateway response cannot choose among them."""
        headers = {}
        if cfg.api.cors_origins:
            one = len(cfg.api.cors_origins) == 1
            headers["Access-Control-Allow-Origin"] = f"'{cfg.api.cors_origins[0]}'" if one else "method.request.header.Origin"
            if not one:
                headers["Vary"] = "'Origin'"
        for response_type, error in GATEWAY_ERRORS.items():
            self.api.add_gateway_response(
                response_type,
                type=apigw.ResponseType.of(response_type),
                status_code=None if error.status is None else str(error.status),
                response_headers=headers or None,
                templates={"application/json": gateway_template(error)},
            )

    def _usage_plan(self, cfg: Config) -> apigw.IApiKey:
        plan = self.api.add_usage_plan(
            "UsagePlan",
            name=f"{cfg.name}-usage-plan",
            throttle=apigw.ThrottleSettings(rate_limit=cfg.api.rate_limit, burst_limit=cfg.api.burst_limit),
            quota=apigw.QuotaSettings(limit=cfg.api.quota_per_day, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        key = self.api.add_api_key("ApiKey", api_key_name=f"{cfg.name}-key")
        plan.add_api_key(key)
        return key
