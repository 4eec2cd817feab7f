"""Multi-process data-parallel training under torchrun (gloo on the CPU, NCCL on GPUs).

GAN steps run several forwards and, for WGAN-GP/R1, double backward, which
``DistributedDataParallel`` handles badly. So each optimiser averages its gradients across
processes right before stepping: the same synchronous data parallelism as DDP, with no
constraint on what a variant's ``train_step`` does. Rank 0 alone writes files.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def init() -> tuple[int, int]:
    """Join the process group torchrun set up; (rank, world) = (0, 1) when run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shutdown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_modules(modules: dict[str, nn.Module]) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if not dist.is_initialized():
        return
    for m in modules.values():
        for t in list(m.parameters()) + list(m.buffers()):
            dist.broadcast(t.data, 0)


class AveragedOptimizer:
    """Wraps an optimiser: ``step()`` first all-reduces (averages) the gradients."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt

    def step(self) -> None:
        if dist.is_initialized() and dist.get_world_size() > 1:
            grads = [p.grad for g in self.opt.param_groups for p in g["params"] if p.grad is not None]
            if grads:
                flat = torch.cat([g.reshape(-1) for g in grads])
                dist.all_reduce(flat)
                flat /= dist.get_world_size()
                offset = 0
                for g in grads:
                    g.copy_(flat[offset : offset + g.numel()].view_as(g))
                    offset += g.numel()
        self.opt.step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.opt, name)
