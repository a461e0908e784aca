"""The PyTorch inference container's serving stack, run on this machine: endpoint.container 'torchserve'.

TorchServe 0.12 with sagemaker-pytorch-inference 2.0.25, the stack of AWS's `pytorch-inference:2.6`
image (the last one with TorchServe), installed in .venv-torchserve (`make .venv-torchserve/.stamp`),
started by imgclf/local/torchserve_launcher.py as the container's `serve` entry point starts it, on
127.0.0.1. The toolkit runs the model's `code/inference.py`. `start()` returns once a worker has
loaded the model; `ping()` and `invoke()` are TorchServe's `/ping` and `/invocations`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from imgclf.errors import UserError
from imgclf.local import sessions
from imgclf.local.container import Answer, forwarded_headers, free_port, get_status, post

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = REPO_ROOT / ".venv-torchserve" / "bin" / "python"
LAUNCHER = Path(__file__).with_name("torchserve_launcher.py")
START_TIMEOUT_SECONDS = 300.0
INVOKE_TIMEOUT_SECONDS = 60.0
_LOG_TAIL_LINES = 12


class TorchServeContainer:
    """TorchServe on `model_dir` with the container's `environment`; its output goes to `log_path`."""

    def __init__(self, model_dir: str | Path, environment: dict[str, str], log_path: str | Path) -> None:
        self.model_dir = Path(model_dir).resolve()
        self.environment = dict(environment)
        self.log_path = Path(log_path).resolve()
        self.port = 0
        self.sessions: list[int] = []
        self._process: subprocess.Popen | None = None
        self._work: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> "TorchServeContainer":
        if not PYTHON.exists():
            raise UserError(f"endpoint.container 'torchserve' runs locally from {PYTHON.parent.parent}: "
                            "build it with `make .venv-torchserve/.stamp`")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._work = tempfile.mkdtemp(prefix="imgclf-torchserve-")
        self.port, *other_ports = (free_port() for _ in range(4))
        # Its own venv's packages (and the main venv's, through a .pth file), not this process's path.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | self.environment
        command = [str(PYTHON), str(LAUNCHER), str(self.model_dir), self._work, str(self.port), *map(str, other_ports)]
        self._process = sessions.spawn(command, REPO_ROOT, env, self.log_path)
        self.sessions.append(self._process.pid)
        try:
            self._wait_until_loaded(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_loaded(self, deadline: float) -> None:
        """/ping answers before the worker has loaded the model, so ask the management API."""
        while not self._worker_ready():
            if self._process.poll() is not None:
                raise UserError(f"TorchServe exited with code {self._process.returncode}:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise UserError(f"no TorchServe worker loaded the model in time:\n{self._log_tail()}")
            time.sleep(1.0)

    def _worker_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/models/model", timeout=5) as response:
                return any(w["status"] == "READY" for w in json.loads(response.read())[0]["workers"])
        except (OSError, ValueError, KeyError, IndexError):
            return False

    def _log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(f"  | {line[:300]}" for line in lines) + f"\nfull log: {self.log_path}"

    def stop(self) -> None:
        """Ends the launcher's session: TorchServe's Java frontend and its Python workers."""
        sessions.stop(self.sessions, [self._process] if self._process else [])
        self.sessions = []
        if self._work:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> "TorchServeContainer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def ping(self) -> bool:
        return get_status(self.port, "/ping", 5.0) == 200

    def invoke(self, body: bytes, headers: dict[str, str]) -> Answer:
        return post(self.port, "/invocations", body, forwarded_headers(headers), INVOKE_TIMEOUT_SECONDS)
