"""Deploy locally: the model container (imgclf/local/container.py: Ray Serve on model.tar.gz unless
the config says 'torchserve'), the endpoint in front of it (in this process) and the front door (a
child process), all on 127.0.0.1, until Ctrl-C or SIGTERM; then all of them stop cleanly."""
from __future__ import annotations

import shlex
import signal
import threading
from pathlib import Path

from imgclf.errors import UserError
from imgclf.local.container import Container, container_for
from imgclf.local.endpoint import EndpointServer
from imgclf.local.frontdoor import FrontDoorProcess
from infra.frontdoor_environment import frontdoor_environment

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
#: How often the serve loop checks that the front door and the container are still alive.
WATCH_SECONDS = 1.0


def endpoint_name(cfg) -> str:
    from infra.layout import endpoint_name as deployed_name

    return deployed_name(cfg)


def model_environment(cfg, model_data: Path) -> dict[str, str]:
    """The container Environment of the CreateModel request the state machine would send for this model."""
    from imgclf.local.pipeline import REGION, ROLE_ARN
    from infra.sagemaker_requests import JobLocations, model_request

    loc = JobLocations(role_arn=ROLE_ARN, source_bundle_uri="", data_uri="", output_uri="", region=REGION)
    return model_request(cfg, loc, endpoint_name(cfg), str(model_data))["PrimaryContainer"]["Environment"]


_CONTAINER_NAMES = {"ray-serve": "Ray Serve", "torchserve": "TorchServe"}
#: How each endpoint.container is announced while it starts.
_STARTING = {"ray-serve": "Ray Serve, as AWS's Ray Serve container runs it (a minute or more)",
             "torchserve": "TorchServe, as AWS's PyTorch inference container runs it (past its end of patch)"}


def start_container(cfg, model_dir: Path, environment: dict[str, str], log_dir: Path, progress=print) -> Container:
    """The endpoint's model container on `model_dir`, started and with the model loaded."""
    log = Path(log_dir).resolve() / "container.log"
    progress(f"starting the model container on {model_dir}: {_STARTING[cfg.endpoint.container]}; log: {log}")
    return container_for(cfg, model_dir, environment, log).start()


def curl_line(url: str, image: Path | None) -> str:
    image_arg = shlex.quote(f"@{image}") if image else "@your-image.jpg"
    content_type = CONTENT_TYPES.get(image.suffix.lower(), "application/octet-stream") if image else "image/jpeg"
    return f"curl -sS -X POST -H 'Content-Type: {content_type}' --data-binary {image_arg} {url}/predict"


def serve_until_stopped(container: Container, cfg, serve_dir: Path, port: int, endpoint_port: int = 0,
                        sample_image: Path | None = None) -> int:
    """Serve the started `container` behind the endpoint and the front door; stops all three."""
    name = endpoint_name(cfg)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        try:
            endpoint = EndpointServer(container, name, port=endpoint_port).start()
        except OSError as err:
            raise UserError(f"cannot listen on 127.0.0.1:{endpoint_port}: {err.strerror}; pass --endpoint-port 0") from None
        door = FrontDoorProcess(endpoint.url, name, Path(serve_dir).resolve() / "frontdoor.log", port=port,
                                # Capture records go under the serve folder (docs/monitoring.md).
                                deployment={**frontdoor_environment(cfg), "CAPTURE_LOCAL_DIR": str(Path(serve_dir).resolve())})
        try:
            door.start()
        except UserError as err:
            endpoint.close()
            hint = f"\n(port {port} is in use: pass --port 0 for any free port)" if "in use" in str(err) else ""
            raise UserError(f"{err}{hint}") from None
        print(f"\nmodel container: {_CONTAINER_NAMES[cfg.endpoint.container]} on {container.url}   "
              f"log: {container.log_path}")
        print(f"endpoint {name}: {endpoint.url} (GET /ping, POST /invocations, POST /endpoints/{name}/invocations)")
        print(f"front door (API Gateway + Lambda): {door.url}/predict   log: {door.log_path}")
        print(f"web page: {door.url}/   (drop an image: top-k and its Grad-CAM heatmap)")
        print("\ntry it:")
        print(f"  {curl_line(door.url, sample_image)}")
        print(f"  imgclf predict {shlex.quote(str(sample_image or 'your-image.jpg'))} --url {door.url}")
        print("\nserving until Ctrl-C")
        try:
            while not stop.wait(WATCH_SECONDS):
                if door._proc.poll() is not None:
                    raise UserError(f"the front door stopped unexpectedly; see {door.log_path}")
                if not container.running():
                    raise UserError(f"the model container stopped unexpectedly; see {container.log_path}")
        except KeyboardInterrupt:
            pass
        finally:
            door.stop()
            endpoint.close()
            container.stop()
        print("stopped: model container, endpoint and front door shut down")
        return 0
    finally:
        container.stop()  # again, after a failed start of the endpoint or the front door: a no-op otherwise
        signal.signal(signal.SIGTERM, previous)
