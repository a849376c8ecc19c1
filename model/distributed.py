"""Multi-process (DistributedDataParallel) plumbing: launched by ``torchrun``, detected from the
env.

``torchrun --nproc_per_node=G -m pipeline.train`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; a WORLD_SIZE above 1 turns DDP on (NCCL on CUDA, gloo on the CPU). Rank 0 alone writes
checkpoints, metrics and weights; the others wait at barriers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world_size``; ``local_rank`` picks the GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Read torchrun's environment; start the process group when WORLD_SIZE > 1 (idempotent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum over ranks, in place (a no-op in a single process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def shutdown(info: DistInfo) -> None:
    """Destroy the process group if this module's caller runs distributed."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (batch-norm running statistics) to every rank."""
    if info.enabled:
        for buf in module.buffers():
            dist.broadcast(buf, src)
