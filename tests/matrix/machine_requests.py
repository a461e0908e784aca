"""The stack synthesized for one config, and the requests its state machine sends.

`synthesize()` builds the app as `cdk synth` does (app.py's build_app, cdk-nag included) and reads
the template. The state machine's definition has every CloudFormation reference replaced by a
sample value, as a deployment would resolve it (tests/infra/stack_samples.py).

`run_machine()` executes that definition in moto's Step Functions interpreter
(tests/infra/sfn_harness.py). The interpreter fills each task's `.$` members the way Step Functions
does (JSONPath, States.Format, States.JsonMerge, ...). The run returns the requests as SageMaker
and Application Auto Scaling received them, serialized by botocore. moto's interpreter calls
boto3 with parameter validation off, so the caller checks the requests against botocore's model.
"""
from __future__ import annotations

import dataclasses

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from sfn_harness import Run, Scenario, run_flow
from stack_samples import REGION, load_app, resolve_cfn

from infra.config import Config

#: How long one execution may take in moto's interpreter (Wait states take 0 s there).
MACHINE_TIMEOUT_SECONDS = 120


@dataclass
class Stack:
    cfg: Config
    template: dict
    definition: dict
    outdir: Path

    def resources(self, cfn_type: str) -> list[dict]:
        return [r for r in self.template["Resources"].values() if r["Type"] == cfn_type]

    def only(self, cfn_type: str) -> dict:
        found = self.resources(cfn_type)
        assert len(found) == 1, f"expected one {cfn_type}, found {len(found)}"
        return found[0]

    def resolved(self, value):
        """`value` from the template with its references replaced by the sample values."""
        return resolve_cfn(value, self.template)

    def asset_file(self, uri: str) -> Path:
        """The synthesized file asset that `uri` (its object in the CDK assets bucket) names."""
        asset_hash = uri.rsplit("/", 1)[-1].split(".", 1)[0]
        found = [p for p in self.outdir.glob(f"asset.{asset_hash}*") if p.is_file()]
        assert len(found) == 1, f"no single file asset for {uri} in {self.outdir}: {found}"
        return found[0]


def synthesize(overrides: dict, outdir: Path) -> Stack:
    app = load_app().build_app({"imgclf": overrides, "region": REGION}, str(outdir))
    stack = app.node.children[0]
    template = app.synth().get_stack_by_name(stack.stack_name).template
    machines = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert len(machines) == 1, f"expected one state machine, found {len(machines)}"
    definition = json.loads(resolve_cfn(machines[0]["Properties"]["DefinitionString"], template))
    return Stack(stack.cfg, template, definition, outdir)


@dataclass
class MachineRun:
    run: Run
    #: SageMaker action -> its last request (CreateHyperParameterTuningJob, CreateTrainingJob, ...).
    sagemaker: dict[str, dict]
    #: Application Auto Scaling action -> its last request (RegisterScalableTarget, PutScalingPolicy).
    scaling: dict[str, dict]


def run_machine(definition: dict, scenario: Scenario, execution_input: dict, endpoint_name: str) -> MachineRun:
    scaling: dict[str, dict] = {}
    with pytest.MonkeyPatch.context() as patch:
        for action in ("register_scalable_target", "put_scaling_policy"):
            patch.setattr(ApplicationAutoScalingResponse, action, _recorded(getattr(ApplicationAutoScalingResponse, action), scaling))
        run = run_flow(patch, definition, scenario, execution_input, endpoint_name=endpoint_name,
                       timeout=MACHINE_TIMEOUT_SECONDS)
        if run.output and run.output.get("status") == "PendingManualApproval":
            # release.approval manual: the version is approved, and the approval rule's run deploys it.
            approved = dataclasses.replace(scenario, registered_version="Approved", registered_model_data=run.output["model_data"])
            deployed = run_flow(patch, definition, approved, {}, endpoint_name=endpoint_name, timeout=MACHINE_TIMEOUT_SECONDS)
            run = dataclasses.replace(deployed, requests={**run.requests, **deployed.requests})
    return MachineRun(run, {action: calls[-1] for action, calls in run.requests.items()}, scaling)


def _recorded(method, into: dict[str, dict]):
    def recording(self):
        into[self._get_action()] = json.loads(self.body or "{}")
        return method(self)

    return recording
