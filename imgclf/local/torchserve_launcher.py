"""Start TorchServe the way the SageMaker PyTorch inference container does, on 127.0.0.1.

Run with .venv-torchserve's python, as imgclf/local/torchserve_container.py does:
`python torchserve_launcher.py MODEL_DIR WORK_DIR PORT METRICS_PORT GRPC_PORT GRPC_MGMT_PORT`.
It reuses sagemaker-pytorch-inference's own config generator and handler service (what its `serve`
entry point runs) and changes only what running beside other servers needs: the config file and
model store go to WORK_DIR instead of /etc and the cwd, and every address is 127.0.0.1 on the given
ports instead of 0.0.0.0:8080. The model server then runs in the foreground, in this process's session.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from sagemaker_pytorch_serving_container import handler_service, torchserve


def main(model_dir: str, work_dir: str, port: str, metrics_port: str, grpc_port: str, grpc_mgmt_port: str) -> None:
    work = Path(work_dir)
    (work / "model-store").mkdir(parents=True, exist_ok=True)
    os.environ["SAGEMAKER_BIND_TO_PORT"] = port
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(model_dir) / "code"), os.environ.get("PYTHONPATH")]))
    properties = torchserve._generate_ts_config_properties(handler_service.__file__)
    properties = properties.replace("0.0.0.0", "127.0.0.1")
    # TorchServe links the model into java.io.tmpdir/models: keep that inside WORK_DIR too.
    properties = properties.replace("vmargs=", f"vmargs=-Djava.io.tmpdir={work} ", 1)
    properties += (
        f"\nmetrics_address=http://127.0.0.1:{metrics_port}\n"
        f"grpc_inference_port={grpc_port}\ngrpc_management_port={grpc_mgmt_port}\n"
    )
    config = work / "ts.properties"
    config.write_text(properties)
    os.chdir(work)  # TorchServe writes logs/ under the cwd
    command = [
        "torchserve", "--start", "--foreground", "--ncs",
        "--model-store", str(work / "model-store"),
        "--ts-config", str(config),
        "--log-config", torchserve.DEFAULT_TS_LOG_FILE,
        "--models", f"{torchserve.DEFAULT_TS_MODEL_NAME}={model_dir}",
    ]
    print(" ".join(command), flush=True)
    os.execvp(str(Path(sys.executable).parent / "torchserve"), command)


if __name__ == "__main__":
    main(*sys.argv[1:])
