"""SageMaker PyTorch inference handlers: raw image bytes in, JSON top-k labels out.

Two containers call them, each model_fn once, then per request input_fn -> predict_fn -> output_fn:
the Ray Serve container through the tarball's `deployment.py` (imgclf_serving/deployment.py), and
the TorchServe container's inference toolkit, which imports this module as `inference` from
`model_dir/code`. Request errors are typed (imgclf_serving/errors.py) so that either answers with
their status code instead of a 500. predict_batch_fn is predict_fn over several images at once,
for Ray Serve's request batching on a GPU.

- input_fn turns the body into a checked RGB image (serving.image_decode). It cannot see the
  model, so the model-specific step, the shared eval transform at the model's image size, runs
  at the start of predict_fn.
- top-k comes from the request's `X-Amzn-SageMaker-Custom-Attributes: top_k=N` (InvokeEndpoint's
  CustomAttributes, the one free-form header SageMaker forwards to the container), else from the
  env var TOP_K, else 3.
- `explain=1` in the same header adds a Grad-CAM heatmap of the top class (imgclf_serving/explain.py),
  computed from the forward pass that gives the top-k. It needs the PyTorch network: with an
  optimized forward (ONNX Runtime) the fp32 network is loaded from model.pth on the first explained
  request, and that request's top-k come from it.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from imgclf_serving import explain, optimized_forward
from imgclf_serving.architecture import build_classifier
from imgclf_serving.errors import InvalidParameter, ModelFileError, NotAcceptable
from imgclf_serving.image_decode import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    decode_image,
    env_int,
    media_type,
)
from imgclf_serving.preprocess import eval_transform

META_FILE = "model-meta.json"
CLASSES_FILE = "classes.json"
WEIGHTS_FILE = "model.pth"
META_KEYS = ("arch", "num_classes", "image_size", "model_version")
DEFAULT_TOP_K = 3
CUSTOM_ATTRIBUTES_HEADER = "x-amzn-sagemaker-custom-attributes"
JSON = "application/json"


@dataclass(frozen=True)
class LoadedModel:
    """What model_fn hands the toolkit: the network plus everything needed to read its output."""

    network: Callable[[torch.Tensor], torch.Tensor]  # the PyTorch network, or an optimized forward
    classes: tuple[str, ...]
    meta: dict[str, Any]
    transform: Callable[[Image.Image], torch.Tensor]
    device: torch.device
    default_top_k: int
    grad_cam: Callable[[], explain.GradCam]  # built on the first explained request


@dataclass(frozen=True)
class Prediction:
    """Softmax probabilities over all classes (CPU, 1-D), with the model that produced them, and
    the top class's heatmap when the request asked for one."""

    probabilities: torch.Tensor
    model: LoadedModel
    explanation: explain.Explanation | None = None


def model_fn(model_dir: str) -> LoadedModel:
    root = Path(model_dir)
    meta = _read_meta(root / META_FILE)
    classes = _read_classes(root / CLASSES_FILE, meta["num_classes"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    network = _load_network(root, meta, device)
    # Bad settings fail here, at load, and not on the first request.
    default_top_k = env_int("TOP_K", DEFAULT_TOP_K)
    _limits()
    with torch.inference_mode():  # the first forward pays one-off allocation costs: not a request
        network(torch.zeros(1, 3, meta["image_size"], meta["image_size"], device=device))
    return LoadedModel(
        network=network,
        classes=classes,
        meta=meta,
        transform=eval_transform(meta["image_size"]),
        device=device,
        default_top_k=default_top_k,
        grad_cam=functools.cache(lambda: explain.GradCam(_torch_network(root, meta, device, network), meta["arch"])),
    )


def _torch_network(root: Path, meta: dict[str, Any], device: torch.device, network: Callable) -> torch.nn.Module:
    """The PyTorch network: the one serving runs, else (an optimized forward) the fp32 one from model.pth."""
    if isinstance(network, torch.nn.Module):
        return network
    fp32 = build_classifier(meta["arch"], meta["num_classes"])
    fp32.load_state_dict(_read_state_dict(root / WEIGHTS_FILE, fp32, meta))
    return fp32.to(device).eval()


def _load_network(root: Path, meta: dict[str, Any], device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """On a CPU, the optimized forward that model-meta.json's `optimize` names, if any; else, and
    on a GPU (where the fp32 network is the fast one), the PyTorch network from the state_dict."""
    optimize = meta.get("optimize", "none")
    if optimize not in optimized_forward.FORWARDS:
        choices = ", ".join(optimized_forward.FORWARDS)
        raise ModelFileError(f"{META_FILE}: optimize must be one of {choices}, got {optimize!r}")
    if optimize != "none" and device.type == "cpu":
        return optimized_forward.load(root / optimized_forward.ONNX_FILE, torch.get_num_threads())
    try:
        network = build_classifier(meta["arch"], meta["num_classes"])
    except ValueError as error:
        raise ModelFileError(f"{META_FILE}: {error}") from None
    network.load_state_dict(_read_state_dict(root / WEIGHTS_FILE, network, meta))
    return network.to(device).eval()


def input_fn(body: bytes | bytearray | str, content_type: str | None) -> Image.Image:
    if isinstance(body, str):  # the toolkit decodes text/json bodies; the type check refuses them
        body = body.encode("utf-8")
    max_body_bytes, max_pixels = _limits()
    return decode_image(bytes(body), content_type, max_body_bytes, max_pixels)


def predict_fn(image: Image.Image, model: LoadedModel, context: Any = None) -> Prediction:
    """`context` as for output_fn: the request's `explain=1` asks for the heatmap."""
    if not wants_explanation(context):
        return predict_batch_fn([image], model)[0]
    batch = model.transform(image).unsqueeze(0).to(model.device)
    logits, explanation = explain.explain(model.grad_cam(), batch, image.size, model.meta["image_size"])
    probabilities = torch.softmax(logits.float(), dim=1).cpu()[0]
    return Prediction(probabilities=probabilities, model=model, explanation=explanation)


def wants_explanation(context: Any) -> bool:
    """Whether the request's custom attributes say `explain=1` (or true; 0 or false say no)."""
    value = _custom_attributes(context).get("explain")
    if value is None:
        return False
    if value.lower() not in ("1", "true", "0", "false"):
        raise InvalidParameter(f"custom attribute explain={value!r} must be 1 or 0")
    return value.lower() in ("1", "true")


def predict_batch_fn(images: list[Image.Image], model: LoadedModel) -> list[Prediction]:
    """One forward over all `images`; a Prediction each, in order."""
    batch = torch.stack([model.transform(image) for image in images]).to(model.device)
    with torch.inference_mode():
        logits = model.network(batch)
        probabilities = torch.softmax(logits.float(), dim=1).cpu()
    return [Prediction(probabilities=row, model=model) for row in probabilities]


def output_fn(prediction: Prediction, accept: str | None, context: Any = None) -> tuple[str, str]:
    """JSON top-k. `context` carries the request headers (top_k): the request's header mapping
    (Ray Serve), or the model server's request context, which the toolkit passes when the
    signature has room for it (TorchServe)."""
    _check_accept(accept)
    model = prediction.model
    top_k = min(_requested_top_k(context) or model.default_top_k, len(model.classes))
    scores, indices = torch.topk(prediction.probabilities, top_k)
    body = {
        "model": {"name": model.meta["arch"], "version": model.meta["model_version"]},
        "top_k": top_k,
        "predictions": [
            {"label": model.classes[index], "score": round(float(score), 6)}
            for score, index in zip(scores.tolist(), indices.tolist(), strict=True)
        ],
    }
    if prediction.explanation is not None:
        body["explanation"] = prediction.explanation.to_json(model.classes[prediction.explanation.class_index])
    return json.dumps(body), JSON


def _limits() -> tuple[int, int]:
    return (
        env_int("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        env_int("MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
    )


def _check_accept(accept: str | None) -> None:
    wanted = {media_type(part) for part in (accept or "").split(",")}
    if wanted & {"", JSON, "application/*", "*/*"}:
        return
    raise NotAcceptable(f"accept {accept!r} is not served; this model answers {JSON}")


def _requested_top_k(context: Any) -> int | None:
    """top_k from the custom attributes, or None when the request does not set it."""
    value = _custom_attributes(context).get("top_k")
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,6}", value) or int(value) < 1:
        raise InvalidParameter(f"custom attribute top_k={value!r} must be a positive integer")
    return int(value)


def _custom_attributes(context: Any) -> dict[str, str]:
    """`X-Amzn-SageMaker-Custom-Attributes` as lower-case keys to values (`top_k=5;explain=1`: `k=v`
    pairs separated by ';' or ','); the first of a repeated key wins."""
    found: dict[str, str] = {}
    for pair in re.split(r"[;,]", _request_header(context, CUSTOM_ATTRIBUTES_HEADER) or ""):
        key, _, value = pair.partition("=")
        found.setdefault(key.strip().lower(), value.strip())
    return found


def _request_header(context: Any, name: str) -> str | None:
    """A header of the current request, case-insensitively, from a header mapping or a
    TorchServe/MMS context."""
    if isinstance(context, Mapping):
        headers = context
    else:
        try:
            headers = context.request_processor[0].get_request_properties()
        except (AttributeError, IndexError, TypeError):
            return None
    for key, value in (headers or {}).items():
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key.lower() == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path.name} is missing from the model dir {path.parent}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path.name} is not valid JSON: {error}") from None


def _read_meta(path: Path) -> dict[str, Any]:
    meta = _read_json(path)
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path.name} must be a JSON object with keys {', '.join(META_KEYS)}")
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        raise ModelFileError(f"{path.name} lacks {', '.join(missing)}")
    for key in ("num_classes", "image_size"):
        if not isinstance(meta[key], int) or isinstance(meta[key], bool) or meta[key] < 1:
            raise ModelFileError(f"{path.name}: {key} must be a positive integer, got {meta[key]!r}")
    return meta


def _read_classes(path: Path, num_classes: int) -> tuple[str, ...]:
    classes = _read_json(path)
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        raise ModelFileError(f"{path.name} must be a JSON list of non-empty labels in index order")
    if len(set(classes)) != len(classes):
        raise ModelFileError(f"{path.name} has duplicate labels")
    if len(classes) != num_classes:
        raise ModelFileError(
            f"{path.name} has {len(classes)} labels but {META_FILE} says num_classes={num_classes}"
        )
    return tuple(classes)


def _read_state_dict(path: Path, network: torch.nn.Module, meta: dict[str, Any]) -> dict:
    if not path.is_file():
        raise ModelFileError(f"{path.name} is missing from the model dir {path.parent}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - pickle/zip errors of every kind mean "bad file"
        raise ModelFileError(f"{path.name} is not a loadable state_dict: {error}") from None
    if not isinstance(state, dict):
        raise ModelFileError(f"{path.name} holds a {type(state).__name__}, not a state_dict")
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}"
        for key in expected
        if key in state and getattr(state[key], "shape", None) != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        details = "; ".join(
            f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", mismatched))
            if items
        )
        raise ModelFileError(
            f"{path.name} does not match {META_FILE} (arch={meta['arch']}, "
            f"num_classes={meta['num_classes']}): {details}"
        )
    return state
