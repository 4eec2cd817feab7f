"""Gradient averaging across two real gloo processes."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training.distributed import AveragedOptimizer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    p = torch.nn.Parameter(torch.zeros(3))
    opt = AveragedOptimizer(torch.optim.SGD([p], lr=1.0))
    p.grad = torch.full((3,), float(rank + 1))  # rank 0: 1, rank 1: 2 -> mean 1.5
    opt.step()
    results[rank] = p.detach().clone()
    dist.destroy_process_group()


def test_each_rank_steps_with_the_mean_gradient():
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(_free_port(), results), nprocs=2, join=True)
    assert torch.allclose(results[0], torch.full((3,), -1.5))
    assert torch.equal(results[0], results[1])
