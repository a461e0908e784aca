"""Mixed precision and memory layout (`--amp`): what each device gets, and a CPU run under bfloat16."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from training.train import amp_dtype_for, cli, memory_format

CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)


@pytest.mark.parametrize(
    "amp, device, dtype",
    [("auto", GPU, torch.float16), ("on", GPU, torch.float16), ("off", GPU, None),
     ("auto", CPU, None), ("on", CPU, torch.bfloat16), ("off", CPU, None)],
)
def test_amp_means_float16_on_a_gpu_and_bfloat16_on_a_cpu_only_when_asked(amp, device, dtype):
    assert amp_dtype_for(amp, device) == dtype


def test_channels_last_is_used_on_a_gpu_only():
    assert (memory_format(GPU), memory_format(CPU)) == (torch.channels_last, torch.contiguous_format)


def test_a_cpu_run_with_amp_on_trains_under_bfloat16_and_writes_float32_weights(small_splits: Path, tmp_path: Path,
                                                                                 capsys):
    code = cli(["--train", str(small_splits / "train"), "--valid", str(small_splits / "valid"),
                "--test", str(small_splits / "test"), "--model-dir", str(tmp_path / "model"), "--pretrained", "none",
                "--unfreeze", "all", "--image-size", "32", "--num-workers", "0", "--debugger", "off",
                "--epochs", "1", "--batch-size", "16", "--amp", "on"])
    out = capsys.readouterr().out
    assert code == 0
    assert "device cpu, amp torch.bfloat16" in out
    assert re.search(r"^epoch=1 train_loss=\S+ .*valid_acc=", out, re.M) and "test_loss=" in out
    weights = torch.load(tmp_path / "model" / "model.pth", weights_only=True)
    assert {tensor.dtype for tensor in weights.values() if tensor.is_floating_point()} == {torch.float32}
