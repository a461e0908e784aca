"""One config case through the real code paths: synth, the state machine's requests, the training
jobs under the real toolkit, and the model served by the real handlers.

For each case (tests/matrix/cases.py):
1. synthesize the stack (machine_requests.synthesize);
2. run its state machine in moto's interpreter with a scenario that passes the gate, and keep every
   request the machine sent (machine_requests.run_machine);
3. launch one tuning trial and the retrain from those requests the way SageMaker does
   (training_platform): the data, the source bundle synthesized for this stack and any backbone
   weights are in S3 where the requests say, the trial gets the scenario's tuned values;
4. load the retrain's model.tar.gz, found at the CreateModel request's ModelDataUrl, in a replica
   of the Ray Serve application (imgclf_serving/deployment.py) under that request's container
   Environment, and classify a test image.

Jobs whose container would see the same inputs run once and are shared by the cases that need
them (`job_key`); jobs run two at a time (2 CPU cores), each on one thread.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import tarfile
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from machine_requests import MachineRun, Stack, run_machine, synthesize
from sfn_harness import Scenario
from training_platform import LoopbackS3, channel_downloader, run_platform_job

from imgclf.local.endpoint import EndpointServer
from imgclf.local.frontdoor import FrontDoorProcess
from imgclf.local.jobs import JobResult, JobSpec
from imgclf.local.ray_container import Answer
from infra import hyperparameters as codec
from infra.config import load_config
from infra.gate_checks import gate_checks
from infra.layout import endpoint_name
from training import metrics

#: Jobs at once: one per core.
PARALLEL_JOBS = 2
#: The toolkit logs the script's arguments as this line (a JSON list).
_USER_ARGS = re.compile(r"^SM_USER_ARGS=(\[.*\])$", re.M)


@dataclass(frozen=True)
class Case:
    name: str
    overrides: dict
    #: Execution input of the run (epochs: 1 keeps it short, unless the case is about epochs).
    execution_input: dict = field(default_factory=lambda: {"epochs": 1})


@dataclass
class JobRun:
    """A finished training job and what its container left behind."""

    name: str
    request: dict  # CreateTrainingJob, or the tuning job's TrainingJobDefinition for a trial
    result: JobResult
    folder: Path
    log: str
    isolated: bool
    #: The last checkpoint's run identity (arch, image_size, unfreeze, optimizer, classes, epochs).
    identity: dict | None = None
    #: The kinds of per-parameter optimizer state in that checkpoint (exp_avg: AdamW, momentum_buffer: SGD).
    optimizer_state: set[str] = field(default_factory=set)
    model_uri: str | None = None

    @property
    def args(self) -> dict[str, str]:
        """The script's command-line arguments as the toolkit launched it: {--name: value}."""
        found = _USER_ARGS.search(self.log)
        assert found, f"{self.name}: the toolkit did not log the script's arguments"
        args = json.loads(found.group(1))
        return dict(zip(args[0::2], args[1::2], strict=True))

    def request_hyperparameters(self) -> dict[str, str]:
        """hyperparameters.json as the container got it."""
        return self.config_file("hyperparameters.json")

    def config_file(self, name: str) -> dict:
        return json.loads((self.folder / "input" / "config" / name).read_text())

    def output_file(self, name: str) -> Path:
        return self.folder / "output" / "data" / name

    def final(self, metric: str) -> float | None:
        return self.result.final_metric(metric)


@dataclass
class CaseRun:
    case: Case
    stack: Stack
    machine: MachineRun
    scenario: Scenario
    trial: JobRun | None = None
    retrain: JobRun | None = None
    model_dir: Path | None = None
    #: The handlers' answer to one test image: (status, parsed JSON body).
    served: tuple[int, object] | None = None
    #: Through the front door: {"image": answer to the test image, "too_large": answer to a body one
    #: byte over the Lambda's MAX_BODY_BYTES}, each {"status", "headers", "body"}.
    frontdoor: dict | None = None

    @property
    def cfg(self):
        return self.stack.cfg

    def request(self, action: str) -> dict:
        assert action in self.machine.sagemaker, f"the machine never called {action}: visited {self.machine.run.visited}"
        return self.machine.sagemaker[action]


def passing_scenario(cfg) -> Scenario:
    """What SageMaker reports in a run that reaches the endpoint: the tuner's pick (the middle of
    the lr range, the first batch size and backbone), metrics over the gate, rules without issues."""
    lr = (cfg.tuning.lr_min * cfg.tuning.lr_max) ** 0.5
    tuned = {"lr": repr(lr), "batch-size": str(cfg.tuning.batch_sizes[0]),
             **({"arch": cfg.tuning.archs[0]} if cfg.tuning.archs else {})}
    # A value that passes each of the gate's checks (infra/gate_checks.py), whatever the config adds.
    passing = {"rule": 0.0, "accuracy": 1.0}
    reported = {c.metric: passing[c.kind] for c in gate_checks(cfg, cfg.debugger.mode) if c.kind in passing}
    statuses = {rule: "NoIssuesFound" for rule in metrics.RULE_NAMES} if cfg.debugger.mode == "managed" else None
    return Scenario(tuned=tuned, metrics={**reported, metrics.OBJECTIVE_METRIC: 0.2}, rule_statuses=statuses)


def prepare_case(case: Case, base: dict, root: Path) -> CaseRun:
    """Steps 1 and 2. The stack gets the merged config's every non-default value as its context."""
    merged = load_config(base, case.overrides).model_dump(mode="json", exclude_defaults=True)
    stack = synthesize(merged, root / "cdk" / case.name)
    scenario = passing_scenario(stack.cfg)
    machine = run_machine(stack.definition, scenario, case.execution_input, endpoint_name(stack.cfg))
    return CaseRun(case, stack, machine, scenario)


class Platform:
    """The jobs of every case, on one S3, each distinct job run once."""

    def __init__(self, root: Path, splits: Path, weights: Path) -> None:
        self.root, self.splits, self.weights = root, splits, weights
        self.s3 = LoopbackS3(root / "s3.log")
        self.resolve = channel_downloader(self.s3, root / "downloads")
        self._staged: set[str] = set()
        self._jobs: dict[str, JobRun] = {}
        self._lock = threading.Lock()
        self._multi_instance = threading.Lock()

    def close(self) -> None:
        self.s3.close()

    def run_cases(self, runs: list[CaseRun], front_door_cases: tuple[str, ...] = ()) -> None:
        """Steps 3 and 4 for every case."""
        planned: dict[str, tuple[JobSpec, dict, Stack]] = {}
        wanted: list[tuple[CaseRun, str, str]] = []
        for run in runs:
            trial, retrain = self._specs(run)
            for role, (spec, request) in (("trial", trial), ("retrain", retrain)):
                key = job_key(spec, request)
                planned.setdefault(key, (spec, request, run.stack))
                wanted.append((run, role, key))
        with ThreadPoolExecutor(PARALLEL_JOBS) as pool:
            done = dict(zip(planned, pool.map(lambda item: self._run_job(*item), planned.values()), strict=True))
        for run, role, key in wanted:
            setattr(run, role, done[key])
        for run in runs:
            self._serve(run, run.case.name in front_door_cases)

    def _specs(self, run: CaseRun):
        tuning = run.request("CreateHyperParameterTuningJob")
        definition = tuning["TrainingJobDefinition"]
        digest = hashlib.sha256(json.dumps(run.scenario.tuned, sort_keys=True).encode()).hexdigest()[:8]
        trial_name = f"{tuning['HyperParameterTuningJobName']}-001-{digest}"
        trial = JobSpec.from_tuning_request(tuning, trial_name, run.scenario.tuned, resolve=self._stage_and_resolve(run.stack))
        training = run.request("CreateTrainingJob")
        retrain = JobSpec.from_training_request(training, resolve=self._stage_and_resolve(run.stack))
        return (trial, definition), (retrain, training)

    def _stage_and_resolve(self, stack: Stack):
        """A resolver that first puts in S3 what the URI should hold: a data split, the bundle, the weights."""
        def resolve(uri: str) -> Path:
            self._stage(uri, stack)
            return self.resolve(uri)
        return resolve

    def _stage(self, uri: str, stack: Stack) -> None:
        if uri in self._staged:
            return
        split = uri.rstrip("/").rsplit("/", 1)[-1]
        if uri.endswith("/") and split in ("train", "valid", "test"):
            self.s3.put_folder(uri, self.splits / split)
        elif uri == stack.cfg.training.pretrained_s3_uri:
            self.s3.put_file(uri, self.weights)
        else:  # the source bundle: a CDK file asset
            self.s3.put_file(uri, stack.asset_file(uri))
        self._staged.add(uri)

    def _run_job(self, spec: JobSpec, request: dict, stack: Stack) -> JobRun:
        submit = codec.decode(spec.hyperparameters["sagemaker_submit_directory"])
        if submit.startswith("s3://"):  # the toolkit downloads it inside the container
            with self._lock:
                self._stage(submit, stack)
        # The toolkit's torchrun rendezvous is at algo-1:7777, so one multi-instance job at a time.
        instances = request["ResourceConfig"].get("InstanceCount", 1)
        with self._multi_instance if instances > 1 else nullcontext():
            job, result = run_platform_job(spec, self.root / "jobs" / spec.name, request, self.s3)
        run = JobRun(spec.name, request, result, job.dir, job.log_path.read_text(errors="replace"), job.isolated)
        if result.status == "Completed":
            run.model_uri = job.model_uri
            run.identity, run.optimizer_state = _read_last_checkpoint(job.checkpoint_dir)
        return run

    def _serve(self, run: CaseRun, front_door: bool) -> None:
        """Step 4: the CreateModel request's model and Environment, through a serving replica; with
        `front_door`, also through the local endpoint and the front door with the Lambda's
        environment from the template."""
        if run.retrain.result.status != "Completed" or "CreateModel" not in run.machine.sagemaker:
            return
        primary = run.request("CreateModel")["PrimaryContainer"]
        run.model_dir = extract_model(self.s3, primary["ModelDataUrl"], self.root / "models" / run.case.name)
        container = HandlerContainer(run.model_dir, primary["Environment"])
        image = sample_image(self.splits).read_bytes()
        answer = container.invoke(image, {"Content-Type": "application/octet-stream", "Accept": "application/json"})
        run.served = (answer.status, json.loads(answer.body))
        if front_door:
            run.frontdoor = _through_front_door(run, container, image, self.root / "frontdoor" / run.case.name)


def job_key(spec: JobSpec, request: dict) -> str:
    """What the container sees, minus the instance type: jobs with the same key are the same job.
    The instance type reaches only resourceconfig.json, where the toolkit reads it for GPU and
    distributed-launch decisions that a CPU job here does not take."""
    resources = {k: v for k, v in request["ResourceConfig"].items() if k not in ("InstanceType", "VolumeSizeInGB", "VolumeKmsKeyId")}
    seen = {
        "hyperparameters": {k: v for k, v in spec.hyperparameters.items()},
        "channels": {c["ChannelName"]: c for c in request["InputDataConfig"]},
        "mode": request["AlgorithmSpecification"].get("TrainingInputMode"),
        "resources": resources,
        "isolated": request.get("EnableNetworkIsolation", False),
        "hook": request.get("DebugHookConfig"),
        "checkpoints": "CheckpointConfig" in request,
    }
    return json.dumps(seen, sort_keys=True)


def _read_last_checkpoint(folder: Path) -> tuple[dict | None, set[str]]:
    """The identity and optimizer-state kinds of the newest checkpoint; then the checkpoint files
    are deleted (hundreds of MB each), the debugger's tensors kept."""
    files = sorted(folder.glob("*.pth"))
    if not files:
        return None, set()
    state = torch.load(files[-1], map_location="cpu", weights_only=False)
    kinds = {name for per_param in state["optimizer"]["state"].values() for name in per_param}
    for path in files:
        path.unlink()
    return state["identity"], kinds


def extract_model(s3: LoopbackS3, uri: str, folder: Path) -> Path:
    """model.tar.gz from S3, extracted as the inference container extracts it into /opt/ml/model."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tar = s3.download(uri, folder.parent / f"{folder.name}-tar")
    with tarfile.open(tar, "r:gz") as archive:
        archive.extractall(folder, filter="data")
    return folder


def sample_image(splits: Path) -> Path:
    return next(p for p in sorted((splits / "test").rglob("*")) if p.is_file())


@contextmanager
def container_environment(environment: dict[str, str]):
    """The CreateModel request's container Environment in this process, for as long as it lasts."""
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class HandlerContainer:
    """The model container's contract (`ping`, `invoke`, as imgclf/local/endpoint.py drives a
    container) over one replica of the Ray Serve application (imgclf_serving/deployment.py), called
    in this process as Ray Serve calls it, without starting Ray: the replica's model_fn under the
    model's Environment, then its `__call__` per request, error answers included. (The TorchServe
    stack is served for real in tests/serving/test_torchserve.py.)"""

    def __init__(self, model_dir: Path, environment: dict[str, str]) -> None:
        from imgclf_serving import deployment

        with container_environment(environment):
            self.replica = deployment.Classifier.func_or_class(str(model_dir), batched=False)

    def ping(self) -> bool:
        return True

    def invoke(self, body: bytes, headers: dict[str, str]) -> Answer:
        from starlette.requests import Request

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
                 "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
        response = asyncio.run(self.replica(Request(scope, receive)))
        return Answer(response.status_code, response.media_type, bytes(response.body))


def _through_front_door(run: CaseRun, container: HandlerContainer, image: bytes, folder: Path) -> dict:
    """POST /predict to the local front door (the real Lambda handler with the template's environment)
    in front of the local endpoint; the image, then a body one byte over the front door's limit."""
    (function,) = [f["Properties"] for f in run.stack.resources("AWS::Lambda::Function")
                   if "ENDPOINT_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})]
    variables = run.stack.resolved(function["Environment"]["Variables"])
    environment = {k: str(v) for k, v in variables.items() if k != "ENDPOINT_NAME"}
    name = endpoint_name(run.cfg)
    headers = {"Content-Type": "image/png", "Origin": run.cfg.api.cors_origins[0] if run.cfg.api.cors_origins else ""}
    with EndpointServer(container, name) as endpoint, \
            FrontDoorProcess(endpoint.url, name, folder / "frontdoor.log", deployment=environment) as door:
        return {
            "image": _post(f"{door.url}/predict", image, headers),
            "too_large": _post(f"{door.url}/predict", b"\0" * (int(environment["MAX_BODY_BYTES"]) + 1), headers),
        }


def _post(url: str, body: bytes, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(url, data=body, headers={k: v for k, v in headers.items() if v}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, answer_headers, payload = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, payload = error.code, dict(error.headers), error.read()
    return {"status": status, "headers": {k.lower(): v for k, v in answer_headers.items()},
            "body": json.loads(payload) if payload else None}
