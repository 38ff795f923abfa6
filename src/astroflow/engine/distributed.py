"""One process or several: the process group, rank agreement and the global batch.

Under torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the environment) each process
drives one GPU with NCCL, or one share of the CPU with gloo when there is no GPU; otherwise
the run is a world of one and every helper here is a no-op. Small CPU-side messages (the stop
flag, validation outputs, RNG states) always travel over a gloo group, so they need no device
tensors and never wait behind NCCL kernels.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from astroflow.device import select_device


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank, world size, device and backend.

    ``backend`` is None for a world of one (no process group). Every method that communicates
    is collective: all ranks call it at the same point, in the same order.
    """

    rank: int
    size: int
    local_rank: int
    device: torch.device
    backend: str | None = None
    control: Any = None  # gloo process group for CPU-side messages

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, writes products and checkpoints."""
        return self.rank == 0

    def agree(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag is true on every rank if it is true on any (a logical OR across ranks)."""
        if self.size == 1:
            return flags
        tensor = torch.tensor([int(f) for f in flags], dtype=torch.int32)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.control)
        return tuple(bool(v) for v in tensor.tolist())

    def global_batch(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The tensors of all ranks concatenated along the batch axis, differentiably.

        A loss of batch statistics (the moment loss takes logarithms of batch means) is then
        the loss of the global batch on every rank. All ranks hold slices of equal length (the
        epoch plan splits every batch evenly).
        """
        if self.size == 1:
            return tensors
        return tuple(_GatherBatch.apply(t, self.rank, self.size) for t in tensors)

    def gather_rows(self, array: np.ndarray) -> np.ndarray:
        """Concatenate each rank's rows (n_r, ...) in rank order; n_r may differ by rank."""
        if self.size == 1:
            return array
        parts: list[Any] = [None] * self.size
        dist.all_gather_object(parts, array, group=self.control)
        return np.concatenate(parts)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (plain data or CPU tensors), in rank order."""
        if self.size == 1:
            return [obj]
        parts: list[Any] = [None] * self.size
        dist.all_gather_object(parts, obj, group=self.control)
        return parts

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm running statistics).

        After DDP broadcasts rank 0's buffers at the start of a step, each rank updates its
        running statistics with its own slice of the batch; for evaluation every rank must use
        the statistics that rank 0 saves.
        """
        if self.size > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier(group=self.control)

    def shard(self, n: int) -> range:
        """This rank's contiguous block of ``n`` items (blocks differ in length by at most 1)."""
        bounds = np.linspace(0, n, self.size + 1).round().astype(int)
        return range(int(bounds[self.rank]), int(bounds[self.rank + 1]))


class _GatherBatch(torch.autograd.Function):
    """All-gather along axis 0 whose backward returns this rank's share of the gradient.

    Every rank computes the same global loss, so the gradient reaching this rank's slice is
    the sum of what all ranks send back to it (an all-reduce of the whole gradient, then the
    slice: tiny tensors, and a collective every backend has). DDP then divides the summed
    parameter gradients by the world size: the result is the gradient of the global-batch
    loss, as in a single process.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, rank: int, size: int) -> torch.Tensor:
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(size)]
        dist.all_gather(parts, tensor)
        ctx.rows = slice(rank * len(tensor), (rank + 1) * len(tensor))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rows], None, None


def launched_world_size() -> int:
    """Number of processes torchrun started for this run (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def session(requested_device: str | None = None) -> Iterator[World]:
    """Join the process group torchrun set up (if any); leave it on exit.

    Each rank gets ``cuda:LOCAL_RANK`` when GPUs are visible and the CPU otherwise (unless
    ``requested_device`` says "cpu"); NCCL connects GPUs, gloo CPUs.
    """
    size = launched_world_size()
    if size == 1:
        yield World(0, 1, 0, select_device(requested_device))
        return
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = select_device(requested_device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
    try:
        yield World(rank, size, local_rank, device, backend, control)
    finally:
        dist.destroy_process_group()


def wrap_model(model: nn.Module, world: World) -> nn.Module:
    """The network as the training step calls it: DistributedDataParallel across ranks.

    On GPUs BatchNorm layers become SyncBatchNorm, so batch statistics are those of the global
    batch as in a single process. PyTorch has no SyncBatchNorm for CPU tensors: with gloo each
    rank normalizes with the statistics of its own slice of the batch (the DDP test states the
    tolerance this costs).
    """
    if world.size == 1:
        return model
    device_ids = None
    if world.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        device_ids = [world.device.index]
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
