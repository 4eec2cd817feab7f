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


def _ada_worker(rank: int, port: int, results) -> None:
    from training.augment import ADA_INTERVAL, AugmentedDiscriminator, AugmentPipe

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    pipe = AugmentPipe(("cutout",), p=0.0, ada_target=0.4, ada_kimg=1.0, batch_images=8)
    D = AugmentedDiscriminator(torch.nn.Identity(), pipe)
    # rank 0's D is sure of all 8 reals, rank 1's of half: r_t = (8 + 0) / 16 = 0.5 on both
    logits = torch.ones(8, 1, 1, 1) if rank == 0 else torch.tensor([1.0, -1.0] * 4).view(8, 1, 1, 1)
    for _ in range(ADA_INTERVAL):
        D(pipe.watch(lambda: {"image": logits})()["image"])
        pipe.end_step()
    results[rank] = (pipe.rt, pipe.p)  # p stays 0 during the interval: D sees the logits as they are
    dist.destroy_process_group()


def test_ada_averages_r_t_over_processes_so_every_rank_keeps_the_same_p():
    results = mp.Manager().dict()
    mp.spawn(_ada_worker, args=(_free_port(), results), nprocs=2, join=True)
    images = 8 * 2 * 4  # batch x processes x interval
    assert results[0] == results[1] == (0.5, images / 1000)
