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


def backend_for(device: torch.device) -> str:
    """NCCL between CUDA devices (one per local rank), gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def init(device: torch.device | None = None) -> tuple[int, int]:
    """Join the process group torchrun set up; (rank, world) = (0, 1) when run alone.

    ``device`` is this process's training device: on CUDA it becomes the current device
    first, as NCCL requires, and the group uses NCCL; on the CPU, gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device("cpu") if device is None else device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend_for(device))
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
    """Wraps an optimiser: ``step()`` first all-reduces (averages) the gradients.

    Under fp16 the gradients averaged are the scaled ones; an inf on one rank reaches every
    rank through the sum, so all ranks skip that step together."""

    def __init__(self, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None) -> None:
        self.opt = opt
        self.scaler = scaler  # fp16: steps through the loss scaler (unscale, skip on inf/nan)

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
        if self.scaler is not None:
            # updated after each optimiser's step, not once per train_step: a variant may step
            # one optimiser several times per step (k discriminator steps), which GradScaler allows
            # only with an update in between
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.opt, name)
