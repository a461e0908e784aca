"""`imgclf status [EXECUTION] [--follow]`: where a pipeline execution is, in the terms of its jobs.

From the execution history: the current state and the SageMaker jobs it started. Then the tuning
job's progress (DescribeHyperParameterTuningJob: jobs by status, best objective so far), the
retrain's status and rule evaluations (DescribeTrainingJob), and at the end the endpoint and API URL,
or the Fail state's error and cause.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field

from imgclf.cloud.stack_outputs import API_URL, ENDPOINT_NAME, STATE_MACHINE_ARN, add_stack_arguments, client, require, stack_name, stack_outputs
from imgclf.errors import UserError

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
_TUNING = "createHyperParameterTuningJob"
_TRAINING = "createTrainingJob"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stack_arguments(parser)
    parser.add_argument("execution", nargs="?", help="execution ARN (default: the latest execution)")
    parser.add_argument("--follow", action="store_true", help="poll until the execution ends")
    parser.add_argument("--interval", type=float, default=30, help="seconds between polls (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=24 * 3600, help="stop following after this many seconds")


@dataclass
class Status:
    execution_arn: str
    status: str
    state: str = ""
    error: str = ""
    cause: str = ""
    tuning_job: str = ""
    training_job: str = ""
    lines: list[str] = field(default_factory=list)


def latest_execution(sfn, state_machine_arn: str) -> str:
    found = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=1).get("executions", [])
    if not found:
        raise UserError("the state machine has no executions yet; start one with `imgclf start`")
    return found[0]["executionArn"]


def _history(sfn, execution_arn: str) -> list[dict]:
    events, token = [], None
    while True:
        kwargs = {"executionArn": execution_arn, "maxResults": 1000, **({"nextToken": token} if token else {})}
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return events


def read_execution(sfn, execution_arn: str) -> Status:
    from botocore.exceptions import ClientError

    try:
        described = sfn.describe_execution(executionArn=execution_arn)
    except ClientError as err:
        raise UserError(f"cannot read execution {execution_arn}: {err.response.get('Error', {}).get('Message', err)}") from None
    status = Status(execution_arn, described["status"], error=described.get("error", ""), cause=described.get("cause", ""))
    for event in _history(sfn, execution_arn):
        entered = event.get("stateEnteredEventDetails")
        if entered:
            status.state = entered["name"]
        scheduled = event.get("taskScheduledEventDetails")
        if scheduled and scheduled.get("resourceType") == "sagemaker":
            params = json.loads(scheduled.get("parameters") or "{}")
            if scheduled["resource"].startswith(_TUNING):
                status.tuning_job = params.get("HyperParameterTuningJobName", "")
            elif scheduled["resource"].startswith(_TRAINING):
                status.training_job = params.get("TrainingJobName", "")
        failed = event.get("executionFailedEventDetails")
        if failed:
            status.error, status.cause = failed.get("error", ""), failed.get("cause", "")
    return status


def tuning_line(sagemaker, name: str) -> str:
    d = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    c = d.get("TrainingJobStatusCounters", {})
    failed = c.get("NonRetryableError", 0) + c.get("RetryableError", 0)
    line = (f"tuning job {name}: {d['HyperParameterTuningJobStatus']}: {c.get('Completed', 0)} completed, "
            f"{c.get('InProgress', 0)} running, {c.get('Stopped', 0)} stopped, {failed} failed")
    best = d.get("BestTrainingJob")
    if best and best.get("FinalHyperParameterTuningJobObjectiveMetric"):
        m = best["FinalHyperParameterTuningJobObjectiveMetric"]
        tuned = " ".join(f"{k}={v}" for k, v in best.get("TunedHyperParameters", {}).items())
        line += f"; best {m['MetricName']} {m['Value']:.4f} ({best['TrainingJobName']}: {tuned})"
    return line


def training_lines(sagemaker, name: str) -> list[str]:
    d = sagemaker.describe_training_job(TrainingJobName=name)
    lines = [f"training job {name}: {d['TrainingJobStatus']} ({d.get('SecondaryStatus', '')})"]
    if d.get("FailureReason"):
        lines.append(f"  failure: {d['FailureReason']}")
    final = {m["MetricName"]: m["Value"] for m in d.get("FinalMetricDataList", [])}
    if "test_acc" in final:
        lines.append(f"  test_acc {final['test_acc']:.4f}")
    portable = {k[5:]: ("IssuesFound" if v >= 1 else "NoIssuesFound") for k, v in final.items() if k.startswith("rule_")}
    managed = {r["RuleConfigurationName"]: r["RuleEvaluationStatus"] for r in d.get("DebugRuleEvaluationStatuses", [])}
    for label, rules in (("rules", portable), ("Debugger rules", managed)):
        if rules:
            lines.append(f"  {label}: " + ", ".join(f"{k} {v}" for k, v in rules.items()))
    return lines


def describe(sfn, sagemaker, execution_arn: str, outputs: dict[str, str]) -> Status:
    status = read_execution(sfn, execution_arn)
    lines = [f"execution {execution_arn}: {status.status}" + (f" (in {status.state})" if status.status == "RUNNING" else "")]
    if status.tuning_job:
        lines.append(tuning_line(sagemaker, status.tuning_job))
    if status.training_job:
        lines.extend(training_lines(sagemaker, status.training_job))
    if status.status == "SUCCEEDED":
        lines.append(f"endpoint {outputs.get(ENDPOINT_NAME, '?')} is InService")
        if API_URL in outputs:
            lines.append(f"API: {outputs[API_URL]}")
            lines.append(f"try: imgclf predict IMAGE --url {outputs[API_URL]} --api-key <key>")
    elif status.status in TERMINAL:
        lines.append(f"{status.status.lower()} in state {status.state}: {status.error}: {status.cause}")
    status.lines = lines
    return status


def run(args: argparse.Namespace) -> int:
    stack = stack_name(args)
    outputs = stack_outputs(client("cloudformation", args.region), stack)
    sfn, sagemaker = client("stepfunctions", args.region), client("sagemaker", args.region)
    execution = args.execution or latest_execution(sfn, require(outputs, STATE_MACHINE_ARN, stack))
    deadline = time.monotonic() + args.timeout
    shown: list[str] = []
    while True:
        status = describe(sfn, sagemaker, execution, outputs)
        if status.lines != shown:
            print(("\n" if shown else "") + time.strftime("%H:%M:%S ") + "\n".join(status.lines), flush=True)
            shown = status.lines
        if not args.follow or status.status in TERMINAL:
            return 0 if status.status in ("SUCCEEDED", "RUNNING") else 1
        if time.monotonic() > deadline:
            print(f"still {status.status} after {args.timeout:.0f} s; stopped following")
            return 0
        time.sleep(args.interval)
