"""The model container of AWS's Ray Serve Deep Learning Container, run on this machine.

`RayServeContainer.start()` starts Ray Serve on a model dir (an extracted model.tar.gz) the way the
container's SageMaker entrypoint does (aws/deep-learning-containers
scripts/docker/ray/sagemaker_entrypoint.sh): PYTHONPATH gets the model dir and its `code/`, then
`ray start --head`, `serve start --http-host --http-port`, `serve run <model dir>/config.yaml`, and
it waits for Ray Serve's `/-/healthz`. It then waits until a replica has loaded the model, so that
a model that cannot load fails here, with the reason from the replica's log, and not on the first
request. The model's container Environment (CreateModel's, e.g. TOP_K) is the processes' environment.

`ping()` and `invoke()` are the container's adapter (scripts/docker/ray/sagemaker_serve.py, port
8080 in the container): ping is healthz; invoke POSTs the body to Ray Serve's `/` with Content-Type
and Accept (each application/json when absent) and every `X-Amzn-SageMaker-*` header, and returns
Ray Serve's status, body and content type unchanged; a timeout is 504, no connection 503.

What differs from the container, and why: free ports everywhere (several endpoints, and test
sessions, run side by side on one machine), Ray Serve's HTTP proxy on 127.0.0.1 (Ray's own GCS
server, raylet and workers still listen on every interface, as Ray does), Ray's files in a private
temp dir, no usage stats (no network), and `code/requirements.txt` not pip-installed (this
environment has the packages; the trainer writes the file empty, and ships an optimized forward's
ONNX Runtime unpacked in `code/`, for this Python in a local run). Every path handed to a
child process is absolute: the children run in the model dir, not in the caller's folder.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imgclf.errors import UserError
from imgclf.local import sessions
from imgclf.local.container import Answer, forwarded_headers, free_port, get_status, post

#: The adapter's proxy timeout (RAYSERVE_BACKEND_TIMEOUT's default) and its health-check timeout.
BACKEND_TIMEOUT_SECONDS = 300.0
PING_TIMEOUT_SECONDS = 5.0
#: From `ray start` to a replica with the model loaded; on 2 busy cores Ray alone takes about a minute.
START_TIMEOUT_SECONDS = 420.0
_LOG_TAIL_LINES = 12
#: `ray start` gives its raylet a fixed 30 s to register (ray/_private/node.py), which a busy machine
#: can miss; it then fails with this, and starting again usually works.
_NODE_TIMEOUT = "The current node timed out during startup"
RAY_START_ATTEMPTS = 3


def gpu_count() -> int:
    """GPUs as the entrypoint counts them (`nvidia-smi --list-gpus`), for `ray start --num-gpus`."""
    if shutil.which("nvidia-smi") is None:
        return 0
    listed = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=30)
    return len(listed.stdout.splitlines()) if listed.returncode == 0 else 0


class RayServeContainer:
    """Ray Serve on `model_dir` with the container's `environment`; its processes log to `log_path`."""

    def __init__(self, model_dir: str | Path, environment: dict[str, str], log_path: str | Path) -> None:
        self.model_dir = Path(model_dir).resolve()
        self.environment = dict(environment)
        self.log_path = Path(log_path).resolve()
        self.http_port = 0
        self.sessions: list[int] = []  # of `ray start` (Ray's processes) and of `serve run`
        self._serve_run: subprocess.Popen | None = None
        self._ray_dir: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # -- start and stop -------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> "RayServeContainer":
        if not (self.model_dir / "config.yaml").is_file():
            raise UserError(f"{self.model_dir} has no config.yaml: it is not a model for the Ray Serve container "
                            "(train it again with this version of imgclf)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            self._start_processes(deadline)
            self._wait_until_healthy(deadline)
            self._wait_until_loaded(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_processes(self, deadline: float) -> None:
        # A short root: Ray's Unix sockets live under it, and their paths may not pass 107 bytes.
        self._ray_dir = tempfile.mkdtemp(prefix="imgclf-ray-")
        self.http_port = free_port()
        for attempt in range(1, RAY_START_ATTEMPTS + 1):
            gcs_port = free_port()
            env = self._process_environment(f"127.0.0.1:{gcs_port}")
            try:
                self._run("ray start", ["ray", "start", "--head", f"--port={gcs_port}", "--node-ip-address=127.0.0.1",
                                        "--include-dashboard=False", f"--num-gpus={gpu_count()}",
                                        f"--temp-dir={self._ray_dir}", "--disable-usage-stats",
                                        f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}",
                                        f"--dashboard-agent-listen-port={free_port()}"], env, deadline)
                break
            except UserError as err:
                if _NODE_TIMEOUT not in str(err) or attempt == RAY_START_ATTEMPTS:
                    raise
                sessions.stop(self.sessions, [])  # what the attempt left, before the next one
                self.sessions = []
        self._run("serve start", ["serve", "start", "--http-host=127.0.0.1", f"--http-port={self.http_port}"],
                  env, deadline)
        self._serve_run = self._spawn(["serve", "run", str(self.model_dir / "config.yaml")], env)

    def _process_environment(self, ray_address: str) -> dict[str, str]:
        """This process's environment, then the container's, then what the entrypoint sets."""
        env = {**os.environ, **self.environment}
        code_path = f"{self.model_dir}{os.pathsep}{self.model_dir / 'code'}"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code_path, os.environ.get("PYTHONPATH")]))
        env.update(RAY_ADDRESS=ray_address, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
        return env

    def _spawn(self, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        """A Ray CLI of this environment in a session of its own, which stop() ends: the daemons
        `ray start` leaves running stay in it."""
        executable = Path(sys.executable).parent / command[0]
        process = sessions.spawn([str(executable), *command[1:]], self.model_dir, env, self.log_path)
        self.sessions.append(process.pid)
        return process

    def _run(self, what: str, command: list[str], env: dict[str, str], deadline: float) -> None:
        """A start-up command that returns once its part is up."""
        process = self._spawn(command, env)
        try:
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise UserError(f"`{what}` did not finish in time; see {self.log_path}") from None
        if code != 0:
            raise UserError(f"`{what}` failed (exit code {code}):\n{self._log_tail()}\nfull log: {self.log_path}")

    def _wait_until_healthy(self, deadline: float) -> None:
        while not self.ping():
            self._check_alive(deadline, "Ray Serve's /-/healthz did not answer 200")
            time.sleep(0.5)

    def _wait_until_loaded(self, deadline: float) -> None:
        """Healthz answers once the route exists, before a replica has loaded the model. An empty
        POST is refused by the deployment's input_fn (our JSON error) only once one has."""
        while True:
            answer = post(self.http_port, "/", b"", {"Content-Type": "application/octet-stream"}, PING_TIMEOUT_SECONDS)
            if answer.status == 400 and _json_error(answer.body):
                return
            failure = _replica_failure(self.log_path.read_text(errors="replace"))
            if failure:
                raise UserError(f"cannot load the model in {self.model_dir}: {failure}\nfull log: {self.log_path}")
            self._check_alive(deadline, "no replica loaded the model")
            time.sleep(1.0)

    def _check_alive(self, deadline: float, waiting_for: str) -> None:
        if self._serve_run is not None and self._serve_run.poll() is not None:
            raise UserError(f"`serve run` exited with code {self._serve_run.returncode}:\n{self._log_tail()}\n"
                            f"full log: {self.log_path}")
        if time.monotonic() > deadline:
            raise UserError(f"the Ray Serve container did not start in time ({waiting_for}):\n{self._log_tail()}\n"
                            f"full log: {self.log_path}")

    def _log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(f"  | {_plain(line)[:300]}" for line in lines)

    def stop(self) -> None:
        """Ends `serve run` and every process Ray started, replicas included (Ray's actors have
        process groups of their own, but stay in the session `ray start` opened)."""
        sessions.stop(self.sessions, [self._serve_run] if self._serve_run else [])
        self.sessions = []
        if self._ray_dir:
            shutil.rmtree(self._ray_dir, ignore_errors=True)
            self._ray_dir = None

    def running(self) -> bool:
        """Whether `serve run`, which holds the application, still runs."""
        return self._serve_run is not None and self._serve_run.poll() is None

    def __enter__(self) -> "RayServeContainer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the adapter --------------------------------------------------------------------------

    def ping(self) -> bool:
        return get_status(self.http_port, "/-/healthz", PING_TIMEOUT_SECONDS) == 200

    def invoke(self, body: bytes, headers: dict[str, str]) -> Answer:
        """POST /invocations: the request as the adapter forwards it, Ray Serve's answer as it returns it."""
        return post(self.http_port, "/", body, forwarded_headers(headers), BACKEND_TIMEOUT_SECONDS)


def _json_error(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body).get("error"), str)
    except (ValueError, AttributeError):
        return False


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: What Ray Serve's controller logs when a replica's constructor (model_fn) raised, and the last
#: line of the traceback it logs after it: `(ServeController pid=N) module.ErrorType: message`.
_REPLICA_FAILED = "Exception in Replica("
_ERROR_LINE = re.compile(r"^(?:\(\S+ pid=\d+\)\s*)?(?:[\w.]+\.)?(\w+(?:Error|Exception)): (?!Traceback)(.+)$")


def _plain(line: str) -> str:
    return _ANSI.sub("", line)


def _replica_failure(log: str) -> str | None:
    """`ErrorType: message` of the first replica whose constructor failed, once Ray has logged it;
    Ray would retry it, but a model that cannot load fails the same way each time."""
    start = log.find(_REPLICA_FAILED)
    if start < 0:
        return None
    last = None
    for line in map(_plain, log[start:].splitlines()[1:]):
        if _REPLICA_FAILED in line:
            break
        found = _ERROR_LINE.match(line.strip())
        last = f"{found.group(1)}: {found.group(2)}" if found else last
    return last or "a replica failed to start"

