"""A tiny real training loop driven through `Instrumentation`, shared by the debugger tests.

The rules' semantics do not need a ResNet-50: a two-layer MLP on 16 px versions of the demo photos
trains in a second and shows every rule firing or staying quiet. Layers are named like
torchvision's (`block1.relu`) so that the hook's relu_input regex finds them.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from smdebug.core.reductions import REDUCTIONS_PREFIX, reverse_reduction_tensor_name
from torch import nn

from training.instrumentation import Instrumentation
from training.output_files import DEBUGGER_REPORT

SIZE = 16


@dataclass
class Run:
    verdicts: dict
    report: dict
    history: list
    stdout: str
    train_steps: int
    out: Path

    def status(self, rule: str) -> str:
        return next(r["status"] for r in self.report["rules"] if r["rule"] == rule)


def saved_records(trial_dir: Path) -> list[tuple[str, str | None, int]]:
    """(tensor name, reduction or None for the raw value, bytes in the event files) of every record
    the trial's index lists: what the trial really takes on disk, per tensor."""
    records = []
    for index in sorted((Path(trial_dir) / "index").rglob("*.json")):
        for record in json.loads(index.read_text())["tensor_payload"]:
            name, reduction = record["tensorname"], None
            if name.startswith(REDUCTIONS_PREFIX):
                name, reduction, _ = reverse_reduction_tensor_name(name)
            records.append((name, reduction, record["length"]))
    return records


def relu_input_records(trial_dir: Path) -> list[tuple[str | None, int]]:
    """(reduction or None for a raw value, bytes on disk) of every saved ReLU-input record."""
    return [(reduction, length) for name, reduction, length in saved_records(trial_dir) if "relu_input" in name]


def load_split(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted((folder / name).iterdir()):
            image = Image.open(f).convert("RGB").resize((SIZE, SIZE))
            xs.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1))
            ys.append(label)
    return torch.stack(xs), torch.tensor(ys)


def mlp(classes: int = 4, width: int = 32, depth: int = 2, act=nn.ReLU) -> nn.Sequential:
    layers, fan_in = [("flatten", nn.Flatten())], 3 * SIZE * SIZE
    for i in range(depth):
        layers.append((f"block{i + 1}", nn.Sequential(OrderedDict(fc=nn.Linear(fan_in, width), relu=act()))))
        fan_in = width
    layers.append(("head", nn.Linear(fan_in, classes)))
    return nn.Sequential(OrderedDict(layers))


def train(data, out: Path, *, epochs=3, lr=0.05, batch=32, model=None, init=None, shuffle_valid=False,
          n_train=None, rule_params=None, save_interval=1, profile_steps=3) -> Run:
    """Train on `data` = ((x_train, y_train), (x_valid, y_valid)) with `Instrumentation` in portable mode."""
    torch.manual_seed(0)
    (xtr, ytr), (xva, yva) = data
    if n_train:
        keep = torch.randperm(len(ytr))[:n_train]
        xtr, ytr = xtr[keep], ytr[keep]
    if shuffle_valid:
        yva = yva[torch.randperm(len(yva))]
    model = model or mlp()
    if init:
        init(model)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    instr = Instrumentation("portable", out, trial_dir=Path(out) / "tensors", save_interval=save_interval,
                            profile_steps=profile_steps, rule_params=rule_params)
    instr.attach(model, loss_fn)
    history, steps = [], 0
    for epoch in range(1, epochs + 1):
        instr.set_mode("train")
        model.train()
        order, losses = torch.randperm(len(ytr)), []
        for i in range(0, len(ytr), batch):
            tick = time.perf_counter()
            x, y = xtr[order[i:i + batch]], ytr[order[i:i + batch]]
            started = time.perf_counter()
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            instr.record_step(started - tick, time.perf_counter() - started)
            steps += 1
        instr.set_mode("eval")
        model.eval()
        with torch.no_grad():
            valid = [loss_fn(model(xva[i:i + 16]), yva[i:i + 16]).item() for i in range(0, len(yva), 16)]
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "valid_loss": float(np.mean(valid))})
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        verdicts = instr.finish(history)
    report = json.loads((Path(out) / DEBUGGER_REPORT).read_text())
    return Run(verdicts, report, history, stdout.getvalue(), steps, Path(out))
