"""Each adversarial loss: its value and gradient on tiny cases whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import AdversarialLoss, gradient_penalty, r1_penalty


def logits(*v: float) -> torch.Tensor:
    return torch.tensor(v, requires_grad=True)


def test_nonsaturating_values_and_gradient():
    loss = AdversarialLoss("nonsaturating")
    # D(x) = sigmoid(0) = 1/2 everywhere: -log(1/2) - log(1/2)
    assert loss.d_from_logits(logits(0.0), logits(0.0)).item() == pytest.approx(2 * math.log(2))
    f = logits(-5.0)
    loss.generator(f).backward()
    # non-saturating: d/df softplus(-f) = -sigmoid(-f) ~ -1 where D confidently rejects the fake
    assert f.grad.item() == pytest.approx(-torch.sigmoid(torch.tensor(5.0)).item())


def test_saturating_generator_gradient_vanishes_where_d_wins():
    f = logits(-5.0)
    AdversarialLoss("saturating").generator(f).backward()
    assert abs(f.grad.item()) < 0.01  # the notes' reason for the non-saturating loss


def test_hinge_and_lsgan_and_wgan_values():
    r, f = logits(0.5, 2.0), logits(-2.0, 0.0)
    assert AdversarialLoss("hinge").d_from_logits(r, f).item() == pytest.approx((0.5 + 0) / 2 + (0 + 1) / 2)
    assert AdversarialLoss("lsgan").d_from_logits(r, f).item() == pytest.approx(
        0.5 * (0.25 + 1) / 2 + 0.5 * (4 + 0) / 2)
    assert AdversarialLoss("wgan-gp").d_from_logits(r, f).item() == pytest.approx(-1.0 - 1.25)
    g = logits(1.0, 3.0)
    AdversarialLoss("hinge").generator(g).backward()
    assert torch.allclose(g.grad, torch.tensor([-0.5, -0.5]))
    g2 = logits(1.0, 3.0)
    AdversarialLoss("lsgan").generator(g2).backward()
    assert torch.allclose(g2.grad, torch.tensor([0.0, 1.0]))


def test_gradient_penalty_is_zero_for_a_unit_slope_critic_and_positive_otherwise():
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    w = torch.tensor([0.6, 0.8, 0.0])  # ||w|| = 1
    assert gradient_penalty(lambda x: x @ w, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    assert gradient_penalty(lambda x: x @ (3 * w), real, fake).item() == pytest.approx(4.0)


def test_r1_penalty_value_and_gradient_flows_to_the_critic():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    pen = r1_penalty(lambda x: x @ w, torch.randn(4, 2))
    assert pen.item() == pytest.approx(0.5 * 5.0)
    pen.backward()
    assert torch.allclose(w.grad, torch.tensor([1.0, 2.0]))


def test_wgan_gp_discriminator_includes_the_penalty():
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    critic = lambda x: x @ torch.tensor([3.0, 0.0])  # noqa: E731
    plain = AdversarialLoss("wgan-gp").d_from_logits(critic(real), critic(fake))
    full = AdversarialLoss("wgan-gp", gp_weight=10.0).discriminator(critic, real, fake)
    assert full.item() == pytest.approx(plain.item() + 10.0 * 4.0, rel=1e-5)


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        AdversarialLoss("minimax-ish")


def test_top_k_keeps_the_fakes_d_scores_most_real_and_drops_the_rest():
    # Sinha et al. 2020: with top_k 0.5 of 4 fakes, only the two D rates highest move G
    f = logits(3.0, -2.0, 1.0, -5.0)
    loss = AdversarialLoss("nonsaturating", top_k=0.5)
    value = loss.generator(f)
    assert value.item() == pytest.approx((math.log1p(math.exp(-3.0)) + math.log1p(math.exp(-1.0))) / 2)
    value.backward()
    assert f.grad[1].item() == 0.0 and f.grad[3].item() == 0.0
    assert f.grad[0].item() < 0 and f.grad[2].item() < 0


def test_top_k_ranks_patchgan_maps_by_their_mean_and_rounds_up():
    # 3 samples of 2x2 patch logits; ceil(0.5 * 3) = 2 whole samples kept: the 1st and 3rd by mean
    f = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[9.0, -9.0], [-9.0, -9.0]]], [[[0.5, 0.5], [0.5, 0.5]]]],
                     requires_grad=True)
    AdversarialLoss("lsgan", top_k=0.5).generator(f).backward()
    assert f.grad[1].abs().sum().item() == 0.0
    assert f.grad[0].abs().sum().item() == 0.0  # lsgan: logit 1 is G's target, zero gradient
    assert (f.grad[2] < 0).all()


def test_top_k_of_one_is_the_plain_loss_and_out_of_range_is_refused():
    f = logits(3.0, -2.0)
    assert AdversarialLoss(top_k=1.0).generator(f).item() == pytest.approx(AdversarialLoss().generator(f).item())
    with pytest.raises(ValueError, match="top_k"):
        AdversarialLoss(top_k=0.0)
