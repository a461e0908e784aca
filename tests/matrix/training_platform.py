"""What SageMaker does around a training container, done on this machine.

- S3 is a moto server on 127.0.0.1, in its own process. Code inside a job reaches it the way it
  reaches S3 in the cloud, through boto3 (`AWS_ENDPOINT_URL_S3` points boto3 at it).
- Before the start, each channel's objects are downloaded into /opt/ml/input/data/<channel>. An
  S3Prefix that names one object gives that one file. /opt/ml/input/config gets
  hyperparameters.json (the request's text values), inputdataconfig.json and resourceconfig.json.
  When the request has a CheckpointConfig or a DebugHookConfig, it also gets checkpointconfig.json
  or debughookconfig.json.
- The container is the PyTorch training image's: its framework module (sagemaker-pytorch-training)
  under the toolkit.
- At the start, the job folder is mounted at /opt/ml in a mount namespace of its own, with the
  instance's host name (algo-1, ...) in a UTS namespace, and the container's `train` command runs
  there. A job with EnableNetworkIsolation also runs in a network namespace whose only interface is
  its own loopback, so nothing outside it can be reached, S3 included. A job on N instances
  runs N containers (algo-1 ... algo-N, each with its own folder and resourceconfig.json), whose
  /etc/hosts puts every instance on 127.0.0.1, so that torchrun's rendezvous at algo-1:7777 works.
- After a Completed job, /opt/ml/model is packed into model.tar.gz and uploaded to
  <S3OutputPath>/<job name>/output/model.tar.gz.

The job folder, the metrics and describe.json come from the local engine's LocalTrainingJob
(imgclf/local/jobs.py). This module holds only the ways SageMaker's platform differs from the
local engine. It needs root (unshare, mount).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
import time
import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import boto3

from imgclf.local.jobs import CONTAINER_ROOT, JobResult, JobSpec, LocalTrainingJob
from imgclf.local.ray_container import free_port

REGION = "us-east-1"
#: Where SageMaker's debug hook writes tensors when DebugHookConfig names no LocalPath.
DEFAULT_TENSORS_PATH = "/opt/ml/output/tensors"
#: What the PyTorch training image's ENV names as the toolkit's framework module: it picks the
#: toolkit's TorchDistributedRunner (torchrun) when `sagemaker_torch_distributed_enabled` is set.
PYTORCH_TRAINING_MODULE = "sagemaker_pytorch_container.training:main"
#: The file that becomes the container's /etc/hosts: every instance of the job on loopback.
HOSTS_FILE = "etc-hosts"
#: Run inside `unshare --mount --uts [--net]`: the loopback up (a new network namespace starts
#: with it down; a container has one), the instance's host name, a fresh /opt (hiding the
#: machine's own) with the job folder at /opt/ml, the job's /etc/hosts, then the container's
#: command. "$0" is the job folder, "$1" the host name, the rest the command.
_CONTAINER_SETUP = ('ip link set lo up && hostname "$1" && mount -t tmpfs tmpfs /opt && mkdir /opt/ml && '
                    f'mount --bind "$0" /opt/ml && mount --bind "$0/{HOSTS_FILE}" /etc/hosts && cd /opt/ml && '
                    'shift && exec "$@"')
START_TIMEOUT_SECONDS = 60.0


def namespaces_unavailable() -> str | None:
    """Why jobs cannot run in their own namespaces here, or None when they can."""
    try:
        result = subprocess.run(["unshare", "--mount", "--uts", "--net", "--", "sh", "-c",
                                 "ip link set lo up && hostname algo-1 && mount -t tmpfs tmpfs /opt"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare cannot run: {err}"
    return None if result.returncode == 0 else f"unshare --mount --uts --net failed: {result.stderr.strip()}"


def split_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return parts.netloc, parts.path.lstrip("/")


class LoopbackS3:
    """A moto S3 server on 127.0.0.1; `close()` stops it."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self._log = open(log_path, "ab")  # noqa: SIM115 - open as long as the server runs
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._buckets: set[str] = set()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2).close()
                break
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"the S3 server did not start; log: {log_path}") from None
                time.sleep(0.2)
        self.client = boto3.client("s3", **self._client_settings())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _client_settings(self) -> dict:
        return {"endpoint_url": self.url, "region_name": REGION, "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing"}

    def environment(self) -> dict[str, str]:
        """What a process needs to reach this S3 through boto3 (dummy credentials)."""
        return {"AWS_ENDPOINT_URL_S3": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}

    def _bucket(self, name: str) -> str:
        if name not in self._buckets:
            self.client.create_bucket(Bucket=name)
            self._buckets.add(name)
        return name

    def put_file(self, uri: str, path: Path) -> None:
        bucket, key = split_uri(uri)
        self.client.upload_file(str(path), self._bucket(bucket), key)

    def put_folder(self, uri: str, folder: Path) -> None:
        """Every file under `folder` at `uri` + its relative path."""
        prefix = uri.rstrip("/")
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            self.put_file(f"{prefix}/{path.relative_to(folder).as_posix()}", path)

    def download(self, uri: str, dest: Path) -> Path:
        """An S3Prefix channel's objects, as SageMaker lays them out: `dest/<key after the prefix's
        folder>` for each object, or the one file when the prefix names exactly one object."""
        bucket, prefix = split_uri(uri)
        keys = [obj["Key"] for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for obj in page.get("Contents", [])]
        if not keys:
            raise FileNotFoundError(f"no S3 object under {uri}")
        folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        dest.mkdir(parents=True, exist_ok=True)
        for key in keys:
            target = dest / key[len(folder):]
            target.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(bucket, key, str(target))
        return dest / keys[0][len(folder):] if keys == [prefix] else dest

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()


class PlatformJob(LocalTrainingJob):
    """A LocalTrainingJob started the way SageMaker starts the container (module docstring)."""

    def __init__(self, spec: JobSpec, job_dir: Path, request: dict, s3: LoopbackS3, host: int = 1) -> None:
        super().__init__(spec, job_dir)
        self.request = request
        self.s3 = s3
        self.isolated = bool(request.get("EnableNetworkIsolation"))
        self.hosts = tuple(f"algo-{i}" for i in range(1, request["ResourceConfig"].get("InstanceCount", 1) + 1))
        self.host = self.hosts[host - 1]

    @property
    def container_root(self) -> str:
        return CONTAINER_ROOT

    def prepare(self) -> None:
        super().prepare()
        (self.dir / HOSTS_FILE).write_text("127.0.0.1 localhost " + " ".join(self.hosts) + "\n")
        config = self.dir / "input" / "config"
        if "CheckpointConfig" in self.request:
            checkpoint = self.request["CheckpointConfig"]
            _write(config / "checkpointconfig.json", {"LocalPath": checkpoint.get("LocalPath", "/opt/ml/checkpoints"),
                                                      "S3Path": checkpoint["S3Uri"]})
        if "DebugHookConfig" in self.request:
            hook = self.request["DebugHookConfig"]
            _write(config / "debughookconfig.json", {"LocalPath": hook.get("LocalPath", DEFAULT_TENSORS_PATH), **hook})

    def _command(self) -> list[str]:
        namespaces = ["--mount", "--uts", *(["--net"] if self.isolated else [])]
        return ["unshare", *namespaces, "--", "sh", "-c", _CONTAINER_SETUP, str(self.dir.resolve()), self.host,
                *super()._command()]

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        env.update(self.s3.environment())
        env["SAGEMAKER_TRAINING_MODULE"] = PYTORCH_TRAINING_MODULE
        # The image's Python has its scripts (torchrun) on PATH.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    @property
    def model_uri(self) -> str:
        """Where SageMaker puts model.tar.gz (DescribeTrainingJob's S3ModelArtifacts)."""
        return "/".join([self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/"), self.spec.name, "output",
                         "model.tar.gz"])

    def upload_model(self) -> None:
        self.s3.put_file(self.model_uri, self.pack_model())


def channel_downloader(s3: LoopbackS3, root: Path) -> Callable[[str], Path]:
    """A JobSpec resolver: each channel URI downloaded once, into a folder of its own under `root`."""
    downloaded: dict[str, Path] = {}

    def resolve(uri: str) -> Path:
        if uri not in downloaded:
            downloaded[uri] = s3.download(uri, root / f"channel-{len(downloaded):03d}")
        return downloaded[uri]

    return resolve


def run_platform_job(spec: JobSpec, job_dir: Path, request: dict, s3: LoopbackS3) -> tuple[PlatformJob, JobResult]:
    """Every instance of the job at once, each in `job_dir/algo-<i>`; returns algo-1's job (the one
    whose rank 0 writes the model, which is uploaded) and the job's result: algo-1's, or the first
    failed instance's."""
    count = request["ResourceConfig"].get("InstanceCount", 1)
    jobs = [PlatformJob(spec, job_dir / f"algo-{i}", request, s3, host=i) for i in range(1, count + 1)]
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(lambda job: job.run(), jobs))
    result = next((r for r in results if r.status != "Completed"), results[0])
    if result.status == "Completed":
        jobs[0].upload_model()
    return jobs[0], result


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
