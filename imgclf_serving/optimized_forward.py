"""Serving's optimized CPU forward: the ONNX model that the trainer saved beside the fp32 weights,
run by ONNX Runtime.

`model-meta.json`'s `optimize` names it: `graph` (the fp32 network as an ONNX graph, which ONNX
Runtime fuses and runs with its own kernels) or `int8` (that graph with static int8 quantization,
calibrated on the training split; training/optimize.py). `none`, or no key, serves the PyTorch
network. ONNX Runtime is the one extra package: the trainer ships it unpacked in the model dir's
`code/` (training/optimize.py ship_runtime), which both serving containers put on PYTHONPATH, so a
cold start imports it and installs nothing.
The trainer measures the forward through `load` too, so the gate judges what serving runs.
No torch or onnxruntime import at module level: the config reads FORWARDS at synth.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imgclf_serving.errors import ModelFileError

if TYPE_CHECKING:
    import torch

#: `endpoint.optimize` / `--optimize` choices.
FORWARDS = ("none", "graph", "int8")
#: The optimized model's file in the model dir.
ONNX_FILE = "model.onnx"
#: Names of the graph's input and output.
INPUT, OUTPUT = "images", "logits"


class OnnxForward:
    """Called like the network: a float batch [N, 3, H, W] in, logits [N, classes] out."""

    def __init__(self, session) -> None:
        self.session = session

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        (logits,) = self.session.run([OUTPUT], {INPUT: batch.detach().cpu().numpy()})
        return torch.from_numpy(logits)


def load(path: Path, threads: int) -> OnnxForward:
    """An ONNX Runtime session on `path` with `threads` intra-op threads (the replica's CPU share,
    as torch has it) and every graph optimization on."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelFileError(
            f"{path.name} needs onnxruntime, which the trainer ships in the model dir's code/; it is neither there "
            "nor installed"
        ) from None
    if not path.is_file():
        raise ModelFileError(f"{path.name} is missing from the model dir {path.parent}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings name graph internals, not actions
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own types for a bad file
        raise ModelFileError(f"{path.name} is not a loadable ONNX model: {str(error).splitlines()[0]}") from None
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if names != ([INPUT], [OUTPUT]):
        raise ModelFileError(f"{path.name} has inputs/outputs {names}, expected [{INPUT!r}] / [{OUTPUT!r}]")
    return OnnxForward(session)
