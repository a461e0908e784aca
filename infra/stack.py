"""The one stack: storage, the pipeline (state machine + roles + alerts), the front door and its monitoring.

Each construct acknowledges its own cdk-nag findings beside the resource they concern
(infra/acknowledge.py); app.py adds the checks.
"""
from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from infra.api import FrontDoor
from infra.config import Config
from infra.pipeline import Pipeline
from infra.layout import endpoint_name, model_package_group_name
from infra.monitoring import Monitoring
from infra.release import Release
from infra.storage import Storage


class ImgclfStack(Stack):
    """Everything `cdk deploy` creates. The endpoint itself is created by the state machine's
    first run, under the fixed name `<name>-endpoint` that the front door already knows."""

    def __init__(self, scope: Construct, construct_id: str, *, cfg: Config, region: str) -> None:
        # The region must be concrete: container image URIs are per region (infra/images.py).
        super().__init__(
            scope,
            construct_id,
            env=Environment(region=region),
            description=f"{cfg.name}: image classification on SageMaker (tune, retrain, gate, deploy, serve)",
        )
        self.cfg = cfg
        self.storage = Storage(self, "Storage", cfg=cfg)
        self.pipeline = Pipeline(self, "Pipeline", cfg=cfg, storage=self.storage)
        self.front_door = FrontDoor(self, "FrontDoor", cfg=cfg, key=self.storage.key, bucket=self.storage.bucket)
        self.monitoring = Monitoring(
            self, "Monitoring", cfg=cfg, alerts=self.pipeline.alerts,
            alerts_key=self.pipeline.node.find_child("AlertsKey"), state_machine=self.pipeline.state_machine,
        )
        self.release = Release(self, "Release", cfg=cfg, state_machine=self.pipeline.state_machine)
        self._outputs()

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.front_door.api.url_for_path("/predict"), description="POST images here")
        CfnOutput(self, "PageUrl", value=self.front_door.api.url, description="the web page: drop an image, see why")
        CfnOutput(self, "StateMachineArn", value=self.pipeline.state_machine.state_machine_arn)
        CfnOutput(self, "BucketName", value=self.storage.bucket.bucket_name)
        CfnOutput(self, "EndpointName", value=endpoint_name(self.cfg))
        CfnOutput(self, "ModelPackageGroupName", value=model_package_group_name(self.cfg))
        CfnOutput(self, "AlertsTopicArn", value=self.pipeline.alerts.topic_arn)
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        if self.front_door.api_key:
            CfnOutput(
                self,
                "ApiKeyId",
                value=self.front_door.api_key.key_id,
                description="aws apigateway get-api-key --include-value --api-key <id>",
            )
