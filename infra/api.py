"""The public front door: REST API -> Lambda (imgclf_serving/frontdoor) -> SageMaker InvokeEndpoint.

Images travel as binary: `binaryMediaTypes` makes API Gateway hand the Lambda a base64 body
(`isBase64Encoded: true`). Auth is on: an API key with a usage plan (throttle + daily quota), or
IAM (SigV4). Access logs, execution logs and X-Ray tracing are on. The request-size guard is the
Lambda's MAX_BODY_BYTES (API Gateway's own hard limit is 10 MB; Lambda's sync payload, 6 MB).
The Lambda's reserved concurrency follows the endpoint's capacity (`reserved_concurrency`).

`GET /` is the web page (imgclf_serving/frontdoor/page.html, served by the same Lambda): it calls
POST /predict on its own origin, so it needs no CORS and `api.cors_origins` stays for other sites.
It sits behind the same auth choice: with IAM the page itself needs a signed request (a SigV4
proxy signs the page and its calls alike); with API keys a browser cannot send a key header when it
opens a page, so GET / is open (it holds no data) and the page asks for the key for POST /predict.
"""
from __future__ import annotations

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import roles
from infra.acknowledge import acknowledge, attribute
from infra.config import Config
from infra.frontdoor_bundle import FRONTDOOR_DIR, build_frontdoor_bundle
from infra.frontdoor_environment import frontdoor_environment
from infra.gateway_responses import template as gateway_template
from infra.layout import FRONTDOOR_CAPTURE_PREFIX, endpoint_name
from infra.log_groups import access_log_group_name, frontdoor_function_name, frontdoor_log_group_name, log_group
from imgclf_serving.frontdoor.content_types import BINARY_MEDIA_TYPES
from imgclf_serving.frontdoor.error_codes import GATEWAY_RESPONSES

HANDLER = "frontdoor.app.handler"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
#: API Gateway's default integration timeout; the Lambda's SageMaker read timeout stays below it.
TIMEOUT = Duration.seconds(29)
STAGE = "prod"
#: Requests in flight per real-time instance. Its model server runs one worker per vCPU (or GPU)
#: and queues the rest; on the default ml.m5.large (2 vCPUs, ResNet-50 at about 150 ms an image
#: per core) ten requests are about 1.5 s of queue, well inside the front door's 11 s read
#: timeout. Beyond that a flood would only wait behind the endpoint while holding the account's
#: Lambda concurrency. A larger instance type warrants a larger `api.reserved_concurrency`.
REALTIME_CONCURRENCY_PER_INSTANCE = 10


def reserved_concurrency(cfg: Config) -> int | None:
    """The front-door Lambda's reserved concurrency. "endpoint": what the endpoint can serve at once
    (a serverless endpoint's MaxConcurrency; real-time: the most instances it scales to, times
    REALTIME_CONCURRENCY_PER_INSTANCE). A number: that. "off": None, the account's shared pool."""
    setting = cfg.api.reserved_concurrency
    if setting == "off":
        return None
    if setting != "endpoint":
        return setting
    ep = cfg.endpoint
    if ep.mode == "serverless":
        return ep.max_concurrency
    return max(ep.max_capacity, ep.initial_instance_count) * REALTIME_CONCURRENCY_PER_INSTANCE


@jsii.implements(ILocalBundling)
class _LocalBundle:
    """Builds the asset on this machine (infra/frontdoor_bundle.py): no Docker, no network."""

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        build_frontdoor_bundle(output_dir)
        return True


def _code() -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(FRONTDOOR_DIR),
        # The hash of what ships, so that a new Powertools pin deploys a new asset.
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            local=_LocalBundle(),
            # Never pulled: the local bundling always succeeds or raises.
            image=DockerImage.from_registry("local-bundling-only"),
        ),
    )


class FrontDoor(Construct):
    """`api`, `function`, `page` (the GET / method: the web page) and `api_key` (None with IAM auth)."""

    def __init__(self, scope: Construct, construct_id: str, *, cfg: Config, key: kms.IKey | None, bucket: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        self.function = self._function(cfg, key)
        if cfg.monitoring.capture_percent > 0:
            self._capture_to(bucket, key)
        self.api = self._rest_api(cfg, key)
        integration = apigw.LambdaIntegration(self.function, proxy=True, timeout=TIMEOUT)
        auth = (
            {"api_key_required": True}
            if cfg.api.auth == "api_key"
            else {"authorization_type": apigw.AuthorizationType.IAM}
        )
        # Body validation checks a request model where a method has one; the image methods have
        # none (binary), so what is enforced is the required Content-Type header. Its absence is
        # answered 415 unsupported_media_type (GATEWAY_RESPONSES), as the Lambda answers
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
        self.page = self.api.root.add_method("GET", integration, **({} if cfg.api.auth == "api_key" else auth))
        self.function.add_environment("PAGE_AUTH", cfg.api.auth)
        self._acknowledge_methods(cfg)
        self.api_key = self._usage_plan(cfg) if cfg.api.auth == "api_key" else None
        self._gateway_responses(cfg)

    def _function(self, cfg: Config, key: kms.IKey | None) -> lambda_.Function:
        role = roles.front_door_role(self, "Role", cfg=cfg)
        logs = log_group(self, "FunctionLogs", name=frontdoor_log_group_name(cfg.name), key=key)
        logs.grant_write(role)
        function = lambda_.Function(
            self,
            "Function",
            function_name=frontdoor_function_name(cfg.name),
            description=f"{cfg.name}: image bytes -> SageMaker endpoint -> top-k labels",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            # The front door and Powertools; the model code lives in the endpoint's model.tar.gz.
            code=_code(),
            role=role,
            log_group=logs,
            memory_size=256,
            timeout=TIMEOUT,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=reserved_concurrency(cfg),
            environment={"ENDPOINT_NAME": endpoint_name(cfg), **frontdoor_environment(cfg)},
        )
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) have no resource-level permissions.")
        return function

    def _capture_to(self, bucket: s3.IBucket, key: kms.IKey | None) -> None:
        """Lets the function write capture records (imgclf_serving/frontdoor/capture.py) under the
        capture prefix only, encrypted with the stack's key when there is one."""
        self.function.add_environment("CAPTURE_BUCKET", bucket.bucket_name)
        objects = bucket.arn_for_objects(f"{FRONTDOOR_CAPTURE_PREFIX}/*")
        self.function.add_to_role_policy(
            iam.PolicyStatement(sid="WriteCaptureRecords", actions=["s3:PutObject"], resources=[objects])
        )
        if key is not None:
            self.function.add_environment("CAPTURE_KMS_KEY_ARN", key.key_arn)
            self.function.add_to_role_policy(
                iam.PolicyStatement(sid="EncryptCaptureRecords", actions=["kms:GenerateDataKey"], resources=[key.key_arn])
            )
        acknowledge(self.function.role, f"AwsSolutions-IAM5[Resource::{attribute(bucket, 'Arn')}/{FRONTDOOR_CAPTURE_PREFIX}/*]",
                    "Capture records are one object per request, named by the request id: the prefix is as narrow as it can be.")

    def _rest_api(self, cfg: Config, key: kms.IKey | None) -> apigw.RestApi:
        access_logs = log_group(self, "AccessLogs", name=access_log_group_name(cfg.name), key=key)
        cors = (
            apigw.CorsOptions(
                allow_origins=list(cfg.api.cors_origins),
                allow_methods=["POST", "GET", "OPTIONS"],
                allow_headers=["Content-Type", "X-Api-Key", "Authorization", "X-Amz-Date", "X-Amz-Security-Token"],
            )
            if cfg.api.cors_origins
            else None
        )
        api = apigw.RestApi(
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
        acknowledge(api.node.find_child("CloudWatchRole"),
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
                    "API Gateway's account-level logging role; AWS's AmazonAPIGatewayPushToCloudWatchLogs is the documented policy "
                    "for it, and access logging cannot work without it.")
        acknowledge(api.deployment_stage, "AwsSolutions-APIG3",
                    "No WAF: a web ACL costs a monthly fee, and WAF inspects only the first KBs of a body, so it cannot guard "
                    "multi-MB images. Throttling (stage + usage plan), auth and the Lambda's MAX_BODY_BYTES guard the API.")
        return api

    def _acknowledge_methods(self, cfg: Config) -> None:
        for method in self.api.methods:
            if method.http_method == "OPTIONS":
                acknowledge(method, "AwsSolutions-APIG4",
                            "CORS preflight: browsers send OPTIONS without credentials, so it must answer unauthenticated.")
            elif method is self.page and cfg.api.auth == "api_key":
                acknowledge(method, "AwsSolutions-APIG4",
                            "GET / is the web page, which holds no data: a browser cannot send an API key when it "
                            "opens a page, so the page asks for the key and sends it with each POST /predict.")
            elif cfg.api.auth == "api_key":
                acknowledge(method, "AwsSolutions-APIG4",
                            "Auth is an API key with a usage plan (api.auth=api_key): machine callers, throttle and daily quota. "
                            "Set api.auth=iam for SigV4.")
            acknowledge(method, "AwsSolutions-COG4",
                        "Callers are programs (the imgclf CLI, services) using an API key or SigV4, not users of a Cognito pool.")

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
        for response_type, response in GATEWAY_RESPONSES.items():
            self.api.add_gateway_response(
                response_type,
                type=apigw.ResponseType.of(response_type),
                status_code=None if response.status is None else str(response.status),
                response_headers=headers or None,
                templates={"application/json": gateway_template(response)},
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
