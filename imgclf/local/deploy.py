"""Deploy locally: the endpoint (in this process) and the front door (a child process), both on
127.0.0.1, until Ctrl-C or SIGTERM; then both stop cleanly."""
from __future__ import annotations

import shlex
import signal
import threading
from pathlib import Path

from imgclf.errors import UserError
from imgclf.local.endpoint import EndpointServer, HandlerService
from imgclf.local.frontdoor import FrontDoorProcess
from infra.frontdoor_environment import frontdoor_environment

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
#: How often the serve loop checks that the front door is still alive.
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


def curl_line(url: str, image: Path | None) -> str:
    image_arg = shlex.quote(f"@{image}") if image else "@your-image.jpg"
    content_type = CONTENT_TYPES.get(image.suffix.lower(), "application/octet-stream") if image else "image/jpeg"
    return f"curl -sS -X POST -H 'Content-Type: {content_type}' --data-binary {image_arg} {url}/predict"


def serve_until_stopped(model_dir: Path, cfg, serve_dir: Path, port: int, endpoint_port: int = 0,
                        sample_image: Path | None = None, service: HandlerService | None = None) -> int:
    service = service or HandlerService(model_dir)
    name = endpoint_name(cfg)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        try:
            endpoint = EndpointServer(service, name, port=endpoint_port).start()
        except OSError as err:
            raise UserError(f"cannot listen on 127.0.0.1:{endpoint_port}: {err.strerror}; pass --endpoint-port 0") from None
        door = FrontDoorProcess(endpoint.url, name, serve_dir / "frontdoor.log", port=port,
                                deployment=frontdoor_environment(cfg))
        try:
            door.start()
        except UserError as err:
            endpoint.close()
            raise UserError(f"{err}\n(is port {port} in use? pass --port 0 for any free port)") from None
        print(f"\nendpoint {name}: {endpoint.url} (GET /ping, POST /invocations, POST /endpoints/{name}/invocations)")
        print(f"front door (API Gateway + Lambda): {door.url}/predict   log: {door.log_path}")
        print("\ntry it:")
        print(f"  {curl_line(door.url, sample_image)}")
        print(f"  imgclf predict {shlex.quote(str(sample_image or 'your-image.jpg'))} --url {door.url}")
        print("\nserving until Ctrl-C")
        try:
            while not stop.wait(WATCH_SECONDS):
                if door._proc.poll() is not None:
                    raise UserError(f"the front door stopped unexpectedly; see {door.log_path}")
        except KeyboardInterrupt:
            pass
        finally:
            door.stop()
            endpoint.close()
        print("stopped: endpoint and front door shut down")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
