"""One process of a data-parallel job, or the only process of a plain one.

SageMaker's PyTorch container starts `torchrun` itself when the job carries the
`sagemaker_torch_distributed_enabled` hyperparameter (sagemaker-training's TorchDistributedRunner,
chosen by the container's sagemaker_pytorch_container.training module): one process per GPU
(one per instance on CPU instances) on every instance, with RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous address in the environment. This module reads that environment and gives the trainer
the few collective operations it needs; without torchrun (WORLD_SIZE unset or 1) every operation
is the identity and no process group exists, so a plain run is unchanged.

The division of labour: every rank trains on its share of every global batch
(training/data.py) and DistributedDataParallel averages the gradients; rank 0 alone reads the
checkpoint and the channels' checks and hands the results to the others, and rank 0 alone writes
the model, the checkpoints, the debugger trial and the metric lines.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.nn import functional as F

from training.errors import TrainerError

T = TypeVar("T")

#: How long a rank waits for the others at a collective. Rank 0 alone reads checkpoints and checks
#: every image of the channels before the first step, which on a large dataset takes minutes;
#: NCCL's own default (10 minutes) would end the job while it does.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


class MainRankError(TrainerError):
    """An error rank 0 found and already reported; the other ranks stop with it silently."""


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def run_on_main(self, fn: Callable[[], T]) -> T:
        """fn() on rank 0, its result (or its TrainerError) on every rank: work that must be done
        once, such as reading the newest checkpoint, whose result all ranks must share."""
        if not self.enabled:
            return fn()
        outcome: list[Any] = [None]
        if self.is_main:
            try:
                outcome[0] = ("ok", fn())
            except TrainerError as err:
                outcome[0] = ("error", str(err))
        torch_dist.broadcast_object_list(outcome, src=0)
        kind, value = outcome[0]
        if kind == "error":
            raise (TrainerError if self.is_main else MainRankError)(value)
        return value

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the ranks (float64, so counts stay exact)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch_dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank's flag is set (a SIGTERM that reached one rank first)."""
        return self.all_sum([float(flag)])[0] > 0

    def share_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank. Under DDP each rank's last
        training forward updated its own; evaluation and the saved model must use rank 0's."""
        if self.enabled:
            for buffer in module.buffers():
                torch_dist.broadcast(buffer, src=0)

    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel around `model` (which broadcasts rank 0's weights on creation)."""
        if not self.enabled:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def close(self) -> None:
        if self.enabled and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


#: The plain run: one process, no process group.
SINGLE_PROCESS = Distributed()


def from_environment(env: dict[str, str] | None = None) -> Distributed:
    """This process's place in the job, from torchrun's variables; joins the process group (NCCL
    on GPUs, gloo on CPUs) when there is more than one process."""
    env = os.environ if env is None else env
    world_size = int(env.get("WORLD_SIZE", "1"))
    rank, local_rank = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    return Distributed(rank, world_size, local_rank, device)


def shares(count: int, world_size: int) -> list[int]:
    """How many of `count` items each rank takes: equal, the first ranks one more when uneven."""
    base, extra = divmod(count, world_size)
    return [base + (r < extra) for r in range(world_size)]


class GlobalBatchCrossEntropy(nn.CrossEntropyLoss):
    """Cross-entropy of the whole global batch, computed from this rank's share of it.

    Its value is the mean over every rank's images, so the printed losses, the epoch metrics and
    the loss the debugger hook records are those of one process on the whole batch. Its gradient is
    this rank's share, scaled by world size / global count, so that DDP's average of the ranks'
    gradients is one process's gradient of the batch mean, even when shares differ in size. One
    process: plain nn.CrossEntropyLoss. A module (not F.cross_entropy), so the hook records it."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (torch_dist.is_available() and torch_dist.is_initialized()):
            return super().forward(input, target)
        world_size = torch_dist.get_world_size()
        local_sum = F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                    reduction="sum", label_smoothing=self.label_smoothing)
        stats = torch.stack([local_sum.detach().double(), torch.tensor(float(len(target)), dtype=torch.float64,
                                                                       device=local_sum.device)])
        torch_dist.all_reduce(stats)
        global_sum, global_count = stats.tolist()
        share = local_sum * (world_size / global_count)
        mean = torch.tensor(global_sum / global_count, dtype=share.dtype, device=share.device)
        return share + (mean - share).detach()

    def _get_name(self) -> str:
        # smdebug names the recorded loss after this: the tensor stays `CrossEntropyLoss_output_0`,
        # as in every trial and the losses collection's regex.
        return "CrossEntropyLoss"
