"""EMA warm-up and BatchNorm re-estimation for the averaged generator."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.ema import EMA, recalibrate_batchnorm


def test_warmup_forgets_the_init_and_reaches_the_set_decay():
    ema = EMA({"G": nn.Linear(1, 1)}, decay=0.999)
    assert ema.decay_at(0) == pytest.approx(0.1)
    assert ema.decay_at(90) == pytest.approx(91 / 100)
    assert ema.decay_at(10**6) == 0.999
    assert EMA({"G": nn.Linear(1, 1)}, decay=0.999, warmup=False).decay_at(0) == 0.999


def test_warmup_ema_tracks_a_moved_weight_after_a_few_hundred_steps():
    live = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(live.weight)
    warm, cold = EMA({"G": live}, 0.999), EMA({"G": live}, 0.999, warmup=False)
    with torch.no_grad():
        live.weight.fill_(1.0)
    for t in range(300):
        warm.update({"G": live}, t)
        cold.update({"G": live}, t)
    assert warm.copies["G"].weight.item() > 0.95  # the init weight is forgotten
    assert cold.copies["G"].weight.item() < 0.30  # 1 - 0.999**300


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))


def test_recalibration_measures_the_statistics_of_the_given_weights():
    torch.manual_seed(0)
    net = _net().eval()
    with torch.no_grad():
        net[0].bias.fill_(3.0)  # activations centred near 3; the stored stats say 0
    g = torch.Generator().manual_seed(0)
    assert recalibrate_batchnorm({"G": net}, lambda: net(torch.randn(256, 4, generator=g)), batches=8)
    bn = net[1]
    assert torch.allclose(bn.running_mean, torch.full((8,), 3.0), atol=0.15)
    assert not bn.training and bn.momentum == 0.1  # left as found
    out = net(torch.randn(512, 4, generator=g))
    assert out.mean().abs() < 0.1 and (out.std(0) - 1).abs().max() < 0.15  # normalised again


def test_recalibration_without_batchnorm_or_without_a_prior_changes_nothing():
    assert not recalibrate_batchnorm({"G": nn.Linear(2, 2)}, lambda: None)
    net = _net().eval()
    before = {k: v.clone() for k, v in net[1].state_dict().items()}

    def no_prior() -> None:
        net(torch.randn(4, 4))
        raise NotImplementedError("translation models have no prior")

    assert not recalibrate_batchnorm({"G": net}, no_prior)
    assert all(torch.equal(before[k], v) for k, v in net[1].state_dict().items())
    assert net[1].momentum == 0.1


def test_batchnorm_that_forward_does_not_reach_keeps_its_statistics():
    decoder, encoder = _net().eval(), _net().eval()
    with torch.no_grad():
        encoder[1].running_mean.fill_(5.0)
    assert recalibrate_batchnorm({"Dec": decoder, "E": encoder}, lambda: decoder(torch.randn(64, 4)))
    assert torch.equal(encoder[1].running_mean, torch.full((8,), 5.0))
    assert int(decoder[1].num_batches_tracked) == 16
