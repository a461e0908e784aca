"""Training jobs on this machine, launched the way the SageMaker training container launches them.

A job folder is laid out like the container's `/opt/ml` (input/config/*.json, input/data/<channel>,
model/, output/, checkpoints/) and the real `sagemaker-training` toolkit runs in it as a subprocess
(`SAGEMAKER_BASE_DIR` points it there): it extracts `sagemaker_submit_directory` (for a
network-isolated job, a path under /opt/ml where the `code` channel put the bundle, which here means
the job folder), installs the bundle's requirements.txt, decodes every hyperparameter as JSON
(infra/hyperparameters.py), turns them into CLI flags and runs `sagemaker_program`. What the
job does is read from a CreateTrainingJob-shaped request, and its result is written as a
DescribeTrainingJob-shaped `describe.json`, so the rest of the engine reads jobs as the state machine
does. Each job gets its own process group, so stopping a job stops the trainer under the toolkit too.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from imgclf.errors import UserError
from infra import hyperparameters as codec
from training.metrics import parse_metrics

#: Lines of log kept for a failed job's report.
LOG_TAIL_LINES = 20
#: SageMaker truncates FailureReason to 1024 characters.
FAILURE_REASON_MAX = 1024
#: Seconds a stopped job gets to checkpoint and exit before it is killed (SageMaker gives 120).
STOP_GRACE_SECONDS = 30.0
#: How the toolkit's failure report starts its lines (after the user's own output).
_TOOLKIT_REPORT = ("ExitCode", "ErrorMessage", "Command \"", "ExecuteUserScriptError")
#: Secondary status of a job stopped by Ctrl-C or SIGTERM to the engine; --resume reruns it.
INTERRUPTED = "Interrupted"
#: The container's own root, which a job folder stands for.
CONTAINER_ROOT = "/opt/ml"


@dataclass(frozen=True)
class JobSpec:
    """What one training job runs: everything comes from a SageMaker request dict."""

    name: str
    hyperparameters: dict[str, str]
    metric_definitions: list[dict[str, str]]
    #: Channel name -> a local folder (an S3 prefix's objects) or file (a prefix naming one object).
    channels: dict[str, Path]
    instance_type: str
    max_runtime_seconds: int
    #: Channel name -> TrainingInputMode, as inputdataconfig.json gives it to the container.
    input_modes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_training_request(cls, request: dict, resolve: Callable[[str], Path] | None = None) -> "JobSpec":
        """A CreateTrainingJob request (the final retrain). `resolve` turns a channel's URI into a
        local path (default: `local_path`, the local engine's own folders)."""
        return cls._from_definition(request["TrainingJobName"], request["HyperParameters"], request, resolve)

    @classmethod
    def from_tuning_request(cls, request: dict, name: str, tuned: dict[str, str],
                            resolve: Callable[[str], Path] | None = None) -> "JobSpec":
        """One trial of a CreateHyperParameterTuningJob request: the static hyperparameters, the
        tuned values, and `_tuning_objective_metric`, which SageMaker adds to every trial."""
        definition = request["TrainingJobDefinition"]
        objective = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
        hyperparameters = {**definition["StaticHyperParameters"], **tuned, "_tuning_objective_metric": objective}
        return cls._from_definition(name, hyperparameters, definition, resolve)

    @classmethod
    def _from_definition(cls, name: str, hyperparameters: dict, definition: dict,
                         resolve: Callable[[str], Path] | None) -> "JobSpec":
        resolve = resolve or local_path
        mode = definition["AlgorithmSpecification"].get("TrainingInputMode", "File")
        channels = definition["InputDataConfig"]
        return cls(
            name=name,
            hyperparameters=dict(hyperparameters),
            metric_definitions=list(definition["AlgorithmSpecification"].get("MetricDefinitions", [])),
            channels={c["ChannelName"]: resolve(c["DataSource"]["S3DataSource"]["S3Uri"]) for c in channels},
            instance_type=definition["ResourceConfig"]["InstanceType"],
            max_runtime_seconds=int(definition["StoppingCondition"]["MaxRuntimeInSeconds"]),
            input_modes={c["ChannelName"]: c.get("InputMode", mode) for c in channels},
        )


def local_path(uri: str) -> Path:
    """A channel's URI as a local folder, or a file (an S3 prefix that names one object, as the
    code channel of an isolated job does): the local engine runs on local paths, never S3."""
    if uri.startswith("s3://"):
        raise UserError(f"the local engine reads local folders, not {uri}; pass --data with a local folder")
    path = Path(uri.removeprefix("file://"))
    if not path.exists():
        raise UserError(f"input {path} does not exist")
    return path


@dataclass
class JobResult:
    """A finished job, in DescribeTrainingJob's terms."""

    name: str
    status: str  # Completed | Failed | Stopped
    hyperparameters: dict[str, str]
    metrics: dict[str, list[float]]
    started: float
    ended: float
    secondary_status: str = ""
    failure_reason: str = ""
    log_tail: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.ended - self.started

    def final_metric(self, name: str) -> float | None:
        """The last value of `name` (what SageMaker reports in FinalMetricDataList)."""
        values = self.metrics.get(name)
        return values[-1] if values else None

    def error_line(self) -> str:
        """The line of a failed job's log that says what went wrong: the last one before the
        toolkit's own failure report (ExitCode/ErrorMessage/Command lines)."""
        for line in reversed(self.log_tail):
            text = line.strip()
            if text and "sagemaker-training-toolkit" not in text and not text.startswith(_TOOLKIT_REPORT):
                return text
        lines = self.failure_reason.strip().splitlines()
        return lines[-1] if lines else self.status

    def describe(self) -> dict:
        iso = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat()  # noqa: E731
        described = {
            "TrainingJobName": self.name,
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary_status,
            "HyperParameters": self.hyperparameters,
            "TrainingStartTime": iso(self.started),
            "TrainingEndTime": iso(self.ended),
            "TrainingTimeInSeconds": round(self.duration),
            "FinalMetricDataList": [{"MetricName": k, "Value": v[-1]} for k, v in self.metrics.items()],
            "MetricHistory": self.metrics,
        }
        if self.failure_reason:
            described["FailureReason"] = self.failure_reason
        if self.log_tail:
            described["LogTail"] = self.log_tail
        return described

    @classmethod
    def from_describe(cls, d: dict) -> "JobResult":
        parse = lambda s: datetime.fromisoformat(s).timestamp()  # noqa: E731
        return cls(
            name=d["TrainingJobName"],
            status=d["TrainingJobStatus"],
            hyperparameters=d["HyperParameters"],
            metrics={k: list(v) for k, v in d.get("MetricHistory", {}).items()},
            started=parse(d["TrainingStartTime"]),
            ended=parse(d["TrainingEndTime"]),
            secondary_status=d.get("SecondaryStatus", ""),
            failure_reason=d.get("FailureReason", ""),
            log_tail=d.get("LogTail", []),
        )


class LocalTrainingJob:
    """One job folder and the toolkit process running in it."""

    #: The instance this folder is, and all of the job's (resourceconfig.json): the local engine
    #: runs a job on one instance, whatever its InstanceCount.
    host = "algo-1"
    hosts: tuple[str, ...] = ("algo-1",)

    def __init__(self, spec: JobSpec, job_dir: Path, threads: int = 1, group: "JobGroup | None" = None) -> None:
        self.spec = spec
        self.group = group or JobGroup()
        self.dir = Path(job_dir)
        self.threads = threads
        self.log_path = self.dir / "training.log"
        self.describe_path = self.dir / "describe.json"
        self._proc: subprocess.Popen | None = None
        self._stop_reason = ""
        self._lock = threading.Lock()

    # ----- layout (the trainer's defaults: <base>/model/../checkpoints, as /opt/ml/checkpoints) -----
    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"

    @property
    def output_data_dir(self) -> Path:
        return self.dir / "output" / "data"

    @property
    def container_root(self) -> str:
        """What the job's processes see as /opt/ml: the job folder itself here."""
        return str(self.dir.resolve())

    def prepare(self) -> None:
        """Write the folder SageMaker would give the container (files it reads at start-up)."""
        config = self.dir / "input" / "config"
        data = self.dir / "input" / "data"
        for folder in (config, data, self.model_dir, self.output_data_dir, self.checkpoint_dir):
            folder.mkdir(parents=True, exist_ok=True)
        _write_json(config / "hyperparameters.json", self._hyperparameters_in_place())
        _write_json(
            config / "inputdataconfig.json",
            {
                name: {
                    "TrainingInputMode": self.spec.input_modes.get(name, "File"),
                    "S3DistributionType": "FullyReplicated",
                    "RecordWrapperType": "None",
                }
                for name in self.spec.channels
            },
        )
        _write_json(
            config / "resourceconfig.json",
            {
                "current_host": self.host,
                "current_instance_type": self.spec.instance_type,
                "current_group_name": "homogeneousCluster",
                "hosts": list(self.hosts),
                "instance_groups": [
                    {"instance_group_name": "homogeneousCluster", "instance_type": self.spec.instance_type, "hosts": list(self.hosts)}
                ],
                "network_interface_name": "eth0",
            },
        )
        for name, source in self.spec.channels.items():
            link = data / name
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)
            if source.is_dir():
                link.symlink_to(source.resolve(), target_is_directory=True)
            else:  # one object: SageMaker puts it in the channel folder under its own name
                link.mkdir()
                (link / source.name).symlink_to(source.resolve())

    def _hyperparameters_in_place(self) -> dict[str, str]:
        """The request's hyperparameters, with any value naming a path under /opt/ml (the code
        channel's bundle, for an isolated job) moved to the folder that stands for /opt/ml, and
        serving-python set to this machine's, where the local containers serve."""
        hyperparameters = dict(self.spec.hyperparameters)
        if "serving-python" in hyperparameters:  # the local containers serve on this Python, not the image's
            hyperparameters["serving-python"] = codec.encode({"v": f"{sys.version_info.major}.{sys.version_info.minor}"})["v"]
        if self.container_root == CONTAINER_ROOT:
            return hyperparameters
        moved = {}
        for name, text in hyperparameters.items():
            value = codec.decode(text)
            if isinstance(value, str) and value.startswith(CONTAINER_ROOT + "/"):
                text = codec.encode({name: self.container_root + value[len(CONTAINER_ROOT):]})[name]
            moved[name] = text
        return moved

    def _command(self) -> list[str]:
        """The container's `train` command."""
        return [sys.executable, "-m", "sagemaker_training.cli.train"]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "SAGEMAKER_BASE_DIR": self.container_root,
                # Without it the toolkit waits up to 15 minutes for the host `algo-1` to resolve.
                "SM_STUDIO_LOCAL_MODE": "true",
                "TRAINING_JOB_NAME": self.spec.name,
                "PYTHONUNBUFFERED": "1",
                # Parallel trials share the machine's cores, as SageMaker trials would not.
                "OMP_NUM_THREADS": str(self.threads),
                "MKL_NUM_THREADS": str(self.threads),
                # The venv already holds the bundle's requirements; never reach for an index.
                "PIP_NO_INDEX": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1",
            }
        )
        return env

    # ----- lifecycle -----
    def run(self, on_metrics: Callable[[dict[str, list[float]]], None] | None = None) -> JobResult:
        """Prepare, run to the end (or until stopped), write describe.json and return the result.

        `on_metrics` sees the metrics parsed so far each time a line carries one; it may call
        `stop()` (early stopping)."""
        self.prepare()
        started = time.time()
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        metrics: dict[str, list[float]] = {}
        code = self._start()
        if code is None:
            try:
                code = self._follow(metrics, tail, on_metrics)
            except BaseException:
                # Ctrl-C or SIGTERM in this thread: the job runs in its own session and would
                # outlive us. It checkpoints on SIGTERM, so --resume continues where it stopped.
                self.stop(INTERRUPTED)
                self.wait_stopped(time.monotonic() + STOP_GRACE_SECONDS + 5)
                raise
            finally:
                self.group.discard(self)
        result = JobResult(
            name=self.spec.name,
            status="Completed",
            hyperparameters=self.spec.hyperparameters,
            metrics=metrics,
            started=started,
            ended=time.time(),
            secondary_status="Completed",
        )
        if self._stop_reason:
            result.status, result.secondary_status = "Stopped", self._stop_reason
        elif code != 0:
            result.status, result.secondary_status = "Failed", "Failed"
            result.failure_reason = self._failure_reason(code, tail)
            result.log_tail = list(tail)
        _write_json(self.describe_path, result.describe())
        return result

    def _start(self) -> int | None:
        """Launch the toolkit; None when running, or an exit code when stopped before the start."""
        with self.group.lock, self._lock:
            self._stop_reason = self._stop_reason or self.group.stopping
            if self._stop_reason:
                return -signal.SIGTERM
            self._proc = subprocess.Popen(
                self._command(),
                cwd=self.dir,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
                start_new_session=True,  # its own process group: we stop it, not the terminal's Ctrl-C
            )
            self.group.jobs.add(self)
        return None

    def _follow(self, metrics: dict[str, list[float]], tail: deque[str], on_metrics) -> int:
        """Copy the log to training.log and collect metrics line by line, as CloudWatch sees the
        log events; the job is stopped when it runs past MaxRuntimeInSeconds."""
        timer = threading.Timer(self.spec.max_runtime_seconds, self.stop, args=("MaxRuntimeExceeded",))
        timer.daemon = True
        timer.start()
        try:
            with open(self.log_path, "a") as log:
                for line in self._proc.stdout:
                    log.write(line)
                    log.flush()
                    tail.append(line.rstrip("\n"))
                    found = parse_metrics(line, self.spec.metric_definitions)
                    for name, values in found.items():
                        metrics.setdefault(name, []).extend(values)
                    if found and on_metrics:
                        on_metrics(metrics)
            return self._proc.wait()
        finally:
            timer.cancel()

    def _failure_reason(self, code: int, tail: deque[str]) -> str:
        """What SageMaker reports: the toolkit's output/failure file, else the exit code."""
        failure = self.dir / "output" / "failure"
        text = failure.read_text(errors="replace").strip() if failure.exists() else ""
        text = text or f"AlgorithmError: training exited with code {code}: {tail[-1] if tail else ''}"
        return text[:FAILURE_REASON_MAX]

    def stop(self, reason: str = "Stopped") -> None:
        """Send SIGTERM to the job's process group (the trainer checkpoints and exits), then
        SIGKILL after a grace period. Safe to call from any thread, and before the start."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                return  # it already ended: its own exit status stands
            if not self._stop_reason:
                self._stop_reason = reason
        if proc is None:
            return
        _signal_group(proc, signal.SIGTERM)
        killer = threading.Timer(STOP_GRACE_SECONDS, _signal_group, args=(proc, signal.SIGKILL))
        killer.daemon = True
        killer.start()

    def wait_stopped(self, deadline: float) -> None:
        """Wait until `deadline` (time.monotonic) for a stopped job's processes to end, then
        SIGKILL whatever is left of its process group."""
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)

    def load_result(self) -> JobResult | None:
        """The result of an earlier run of this job folder, if it finished (for --resume)."""
        if not self.describe_path.exists():
            return None
        return JobResult.from_describe(json.loads(self.describe_path.read_text()))

    def pack_model(self) -> Path:
        """model.tar.gz as SageMaker uploads it: the model dir's contents at the archive root."""
        target = self.dir / "output" / "model.tar.gz"
        with tarfile.open(target, "w:gz") as tar:
            for item in sorted(self.model_dir.iterdir()):
                tar.add(item, arcname=item.name)
        return target


class JobGroup:
    """The jobs of one run, so that Ctrl-C stops all of them, including any about to start."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: set[LocalTrainingJob] = set()
        self.stopping = ""

    def discard(self, job: LocalTrainingJob) -> None:
        with self.lock:
            self.jobs.discard(job)

    def stop_all(self, reason: str, wait_seconds: float = STOP_GRACE_SECONDS + 5) -> None:
        """Stop every running job, refuse new ones, and wait (bounded) for the processes to end."""
        with self.lock:
            self.stopping = reason
            running = list(self.jobs)
        for job in running:
            job.stop(reason)
        deadline = time.monotonic() + wait_seconds
        for job in running:
            job.wait_stopped(deadline)


def epoch_line(job_name: str, metrics: dict[str, list[float]], epoch: int, epochs: str) -> str:
    """One progress line: every metric reported once per epoch so far, at its latest value."""
    shown = " ".join(f"{k}={v[-1]:.4f}" for k, v in metrics.items() if len(v) == epoch)
    return f"[{job_name}] epoch {epoch}/{epochs}: {shown}"


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
