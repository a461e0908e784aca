"""Serving latency at batch 1, on one model, along four nested paths:

  forward    the bare model forward on a ready tensor (the floor)
  handler    input_fn + predict_fn + output_fn on the request bytes, in this process
  endpoint   POST /invocations over HTTP to imgclf's local endpoint on 127.0.0.1, which passes it to
             the model container (Ray Serve as AWS's Ray Serve container runs it, or with
             --container torchserve the TorchServe stack): what the container adds
  frontdoor  the Lambda handler on an API Gateway event (as imgclf's local gateway builds it),
             through boto3 and HTTP to the same endpoint

It prints p50/p99 per path, the ratios handler/forward, endpoint/handler and frontdoor/endpoint,
and where the handler's extra time goes (decode, transform, output). The paths are timed in turn
within each iteration, so that load from other processes hits them alike. --endpoint (with
--endpoint-name) uses a local endpoint that already runs, on the model dir --model, instead of
starting a container.

    python benchmarks/serving_latency.py --image-size 224 --iterations 50
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
ENDPOINT_NAME = "bench"
CLASSES = ["cat", "coffee", "rocket"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=224, help="the model's input size (model-meta image_size)")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--photo", default="coffee", help="scikit-image photo to send (coffee is 600x400)")
    parser.add_argument("--photo-side", type=int, default=0, help="resize the photo's long side to this (0: as shipped)")
    parser.add_argument("--format", default="JPEG", choices=["JPEG", "PNG", "WEBP"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--container", default="ray-serve", choices=["ray-serve", "torchserve"])
    parser.add_argument("--endpoint", help="a running local endpoint's URL, instead of starting a container")
    parser.add_argument("--endpoint-name", help="the name that endpoint serves (with --endpoint)")
    parser.add_argument("--model", type=Path, help="with --endpoint: the model dir it serves")
    args = parser.parse_args(argv)
    if bool(args.endpoint) != bool(args.endpoint_name) or bool(args.endpoint) != bool(args.model):
        parser.error("--endpoint, --endpoint-name and --model go together")
    return args


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


@contextmanager
def local_endpoint(args: argparse.Namespace, model_dir: Path, workdir: Path):
    """(URL, name) of the local endpoint: the one --endpoint names, or one in front of a container
    started here with the CreateModel environment of the default config."""
    if args.endpoint:
        yield args.endpoint, args.endpoint_name
        return
    from imgclf.local.container import container_for
    from imgclf.local.deploy import model_environment
    from imgclf.local.endpoint import EndpointServer
    from infra.config import load_config

    cfg = load_config({"endpoint": {"container": args.container}})
    container = container_for(cfg, model_dir, model_environment(cfg, model_dir), workdir / "container.log")
    with container, EndpointServer(container, ENDPOINT_NAME) as endpoint:
        yield endpoint.url, ENDPOINT_NAME


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from PIL import Image
    from skimage import data as skdata

    from imgclf.local.frontdoor import INTEGRATION_TIMEOUT_SECONDS, LambdaContext, proxy_event
    from imgclf_serving import inference
    from imgclf_serving.architecture import build_classifier
    from imgclf_serving.frontdoor.content_types import BINARY_MEDIA_TYPES
    from training.model_dir import write_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    photo = Image.fromarray(getattr(skdata, args.photo)()).convert("RGB")
    if args.photo_side:
        scale = args.photo_side / max(photo.size)
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
    buffer = io.BytesIO()
    photo.save(buffer, format=args.format, **({"quality": 90} if args.format != "PNG" else {}))
    body = buffer.getvalue()
    content_type = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[args.format]
    headers = [("Content-Type", content_type), ("Accept", "application/json")]

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or Path(tmp) / "model"
        if not args.model:  # random weights: the time does not depend on them
            write_model_dir(model_dir, build_classifier("resnet50", len(CLASSES)), CLASSES, "resnet50", args.image_size)
        model = inference.model_fn(str(model_dir))
        batch = model.transform(photo).unsqueeze(0).to(model.device)
        sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)

        def forward():
            with torch.inference_mode():
                model.network(batch)
            sync()

        def handler():
            image = inference.input_fn(body, content_type)
            inference.output_fn(inference.predict_fn(image, model), "application/json")

        with local_endpoint(args, model_dir, Path(tmp)) as (endpoint_url, endpoint_name):
            os.environ.update(
                ENDPOINT_NAME=endpoint_name, AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench", AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=endpoint_url,
                POWERTOOLS_LOG_LEVEL="WARNING", POWERTOOLS_METRICS_DISABLED="true",
            )
            from imgclf_serving.frontdoor import app

            def endpoint():
                request = urllib.request.Request(f"{endpoint_url}/invocations", data=body, headers=dict(headers))
                with urllib.request.urlopen(request, timeout=60) as answer:
                    answer.read()

            def frontdoor():
                event = proxy_event("POST", "/predict", headers, body, BINARY_MEDIA_TYPES)
                answer = app.handler(event, LambdaContext(INTEGRATION_TIMEOUT_SECONDS))
                assert answer["statusCode"] == 200, answer["body"]

            stages = {
                "decode": lambda: inference.input_fn(body, content_type),
                "transform": lambda: model.transform(inference.input_fn(body, content_type)),
            }
            paths = {"forward": forward, "handler": handler, "endpoint": endpoint, "frontdoor": frontdoor}
            for _ in range(args.warmup):
                for fn in (*paths.values(), *stages.values()):
                    fn()
            times: dict[str, list[float]] = {name: [] for name in (*paths, *stages)}
            for _ in range(args.iterations):
                for name, fn in (*paths.items(), *stages.items()):
                    times[name].append(timed(fn))

    p50 = {name: statistics.median(values) for name, values in times.items()}
    served_by = "the endpoint at " + args.endpoint if args.endpoint else f"a {args.container} container"
    print(f"device={model.device} torch_threads={torch.get_num_threads()} image_size={args.image_size} "
          f"photo={args.photo} {photo.width}x{photo.height} {args.format} {len(body):,} bytes "
          f"iterations={args.iterations} served by {served_by}")
    for name, values in times.items():
        print(f"{name:>10}: p50 {p50[name]:8.2f} ms   p99 {percentile(values, 99):8.2f} ms")
    print(f"handler/forward    = {p50['handler'] / p50['forward']:.3f} (p50; target <= 1.10 at 224 px)")
    print(f"endpoint/handler   = {p50['endpoint'] / p50['handler']:.3f} (p50)")
    print(f"frontdoor/endpoint = {p50['frontdoor'] / p50['endpoint']:.3f} (p50)")
    print(f"handler overhead   = {p50['handler'] - p50['forward']:.2f} ms, of which decode {p50['decode']:.2f} ms, "
          f"decode+transform {p50['transform']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
