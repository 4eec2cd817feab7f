"""AAE: encoder/decoder shapes, the two-phase step, preview, two exported graphs."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.config import TrainConfig
from training.export import export_run, load_run
from training.loop import train
from training.losses import AdversarialLoss
from zoo import registry
from zoo.aae import AAE
from zoo.spec import DataInfo, StepContext

TINY = {"width": 8, "image_size": 16, "d_hidden": 32}


def tiny() -> AAE:
    return AAE(AAE.Config(**TINY), DataInfo(channels=1, num_classes=10, name="digits"))


def snapshot(nets):
    return {k: [p.detach().clone() for p in m.parameters()] for k, m in nets.items()}


def changed(before, nets, name) -> bool:
    return any(not torch.equal(a, p) for a, p in zip(before[name], nets[name].parameters(), strict=True))


def test_registered_with_the_notes_groups():
    assert registry.get_variant("aae") is AAE
    v = tiny()
    assert v.task == "reconstruct" and v.latent_dim == 8
    assert v.optimizer_groups == {"AE": ("E", "Dec"), "D": ("D",), "G": ("E",)}
    assert v.ema_modules == ("E", "Dec")


def test_encode_decode_sample_preview_shapes():
    torch.manual_seed(0)
    v = tiny()
    nets = v.build()
    for m in nets.values():
        m.eval()
    x = torch.rand(6, 1, 16, 16) * 2 - 1
    assert v.encode(nets, x).shape == (6, 8)
    r = v.reconstruct(nets, x)
    assert r.shape == x.shape and r.abs().max() <= 1
    with torch.no_grad():
        assert v.sample(nets, 5, torch.Generator().manual_seed(0)).shape == (5, 1, 16, 16)
        assert nets["D"](torch.randn(7, 8)).shape == (7,)

    batches = iter([{"image": torch.rand(8, 1, 16, 16) * 2 - 1} for _ in range(10)])
    fixed = v.preview_inputs(64, torch.Generator().manual_seed(0), batches)
    assert fixed["image"].shape == (32, 1, 16, 16)
    with torch.no_grad():
        grid = v.preview(nets, fixed)
    assert grid.shape == (64, 1, 16, 16)
    assert torch.equal(grid[:8], fixed["image"][:8]) and torch.equal(grid[16:24], fixed["image"][8:16])
    # without data the grid falls back to decoded prior samples
    with torch.no_grad():
        assert v.preview(nets, v.preview_inputs(64, torch.Generator().manual_seed(0))).shape == (64, 1, 16, 16)


def test_train_step_runs_both_phases():
    torch.manual_seed(0)
    v = tiny()
    nets = v.build()
    opts = {g: torch.optim.Adam([p for n in names for p in nets[n].parameters()], 2e-4, betas=(0.5, 0.999))
            for g, names in v.optimizer_groups.items()}
    batch = {"image": torch.rand(4, 1, 16, 16) * 2 - 1, "label": torch.tensor([0, 1, 2, 3])}
    before = snapshot(nets)
    logs = v.train_step(StepContext(nets, opts, AdversarialLoss(), 0, 1, lambda: batch, lambda n, x: x))
    assert set(logs) == {"loss_recon", "loss_d", "loss_g"} and all(np.isfinite(list(logs.values())))
    assert changed(before, nets, "E") and changed(before, nets, "Dec") and changed(before, nets, "D")
    assert all(p.requires_grad for p in nets["D"].parameters())


def test_encoder_alone_is_what_the_regularisation_phase_moves():
    torch.manual_seed(0)
    v = tiny()
    nets = v.build()
    opts = {g: torch.optim.Adam([p for n in names for p in nets[n].parameters()], 1e-3)
            for g, names in v.optimizer_groups.items()}
    opts["AE"] = torch.optim.SGD([p for n in ("E", "Dec") for p in nets[n].parameters()], lr=0.0)  # phase 1 off
    opts["D"] = torch.optim.SGD(nets["D"].parameters(), lr=0.0)
    batch = {"image": torch.rand(4, 1, 16, 16) * 2 - 1}
    before = snapshot(nets)
    v.train_step(StepContext(nets, opts, AdversarialLoss(), 0, 1, lambda: batch, lambda n, x: x))
    assert changed(before, nets, "E")
    assert not changed(before, nets, "Dec") and not changed(before, nets, "D")


def ae_step_with(v: AAE, nets, batch, **weights: float):
    """The parameters after one step in which only the AE group (SGD, lr 0.1) moves, on a copy of
    ``nets`` with the config's loss ``weights`` set and the same random draws each time."""
    for k, w in weights.items():
        setattr(v.config, k, w)
    nets_w = copy.deepcopy(nets)
    opts = {g: torch.optim.SGD([p for n in names for p in nets_w[n].parameters()], lr=0.1 if g == "AE" else 0.0)
            for g, names in v.optimizer_groups.items()}
    torch.manual_seed(1)
    v.train_step(StepContext(nets_w, opts, AdversarialLoss(), 0, 1, lambda: batch, lambda n, x: x))
    return snapshot(nets_w)


def test_image_adversary_trains_dx_and_pulls_only_on_the_decoder():
    torch.manual_seed(0)
    v = AAE(AAE.Config(**TINY, image_adv=0.1), DataInfo(channels=1, num_classes=10, name="digits"))
    assert v.optimizer_groups == {"AE": ("E", "Dec"), "D": ("D",), "G": ("E",), "DX": ("DX",)}
    nets = v.build()
    assert set(nets) == {"E", "Dec", "D", "DX"} and nets["DX"](torch.rand(3, 1, 16, 16)).shape == (3,)
    batch = {"image": torch.rand(4, 1, 16, 16) * 2 - 1}

    opts = {g: torch.optim.SGD([p for n in names for p in nets[n].parameters()], lr=0.1 if g == "DX" else 0.0)
            for g, names in v.optimizer_groups.items()}
    before = snapshot(nets)
    logs = v.train_step(StepContext(nets, opts, AdversarialLoss(r1_weight=1.0), 0, 1, lambda: batch, lambda n, x: x))
    assert {"loss_dx", "loss_gx"} <= set(logs) and all(np.isfinite(list(logs.values())))
    assert changed(before, nets, "DX") and not changed(before, nets, "Dec")
    assert all(p.requires_grad for p in nets["DX"].parameters())

    # the image term is in phase 1's loss: its weight changes the decoder's step, not the encoder's
    after = {w: ae_step_with(v, nets, batch, image_adv=w) for w in (0.1, 1e-6)}
    assert all(torch.equal(a, b) for a, b in zip(after[0.1]["E"], after[1e-6]["E"], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(after[0.1]["Dec"], after[1e-6]["Dec"], strict=True))
    # the paper's AAE (image_adv 0) builds no image discriminator
    assert "DX" not in tiny().build() and "DX" not in tiny().optimizer_groups


def test_recon_adversary_pulls_on_encoder_and_decoder_and_dx_sees_reconstructions():
    """recon_adv (VAE-GAN's third term): reconstructions are half of DX's fakes, and the term
    moves the encoder too (through Dec(E(x))), where image_adv alone leaves it to the MSE."""
    torch.manual_seed(0)
    batch = {"image": torch.rand(4, 1, 16, 16) * 2 - 1}
    seen: list[torch.Tensor] = []
    v = AAE(AAE.Config(**TINY, image_adv=0.1, recon_adv=0.5), DataInfo(channels=1, num_classes=10, name="digits"))
    nets = v.build()
    recon = nets["Dec"](nets["E"](batch["image"])).detach()

    class Loss(AdversarialLoss):
        def discriminator(self, critic, real, fake):  # noqa: ANN001, ANN201
            seen.append(fake.detach())
            return super().discriminator(critic, real, fake)

    opts = {g: torch.optim.SGD([p for n in names for p in nets[n].parameters()], lr=0.0)
            for g, names in v.optimizer_groups.items()}
    logs = v.train_step(StepContext(nets, opts, Loss(), 0, 1, lambda: batch, lambda n, x: x))
    assert "loss_gr" in logs and np.isfinite(logs["loss_gr"])
    dx_fakes = seen[-1]
    assert dx_fakes.shape == recon.shape and torch.allclose(dx_fakes[2:], recon[:2], atol=1e-6)

    with pytest.raises(ValueError, match="recon_adv > 0 needs the image discriminator DX"):
        AAE.Config(**TINY, recon_adv=0.5)  # without image_adv it would be silently ignored

    after = {w: ae_step_with(v, nets, batch, recon_adv=w) for w in (0.5, 0.0)}
    for name in ("E", "Dec"):
        assert not all(torch.equal(a, b) for a, b in zip(after[0.5][name], after[0.0][name], strict=True)), name


def test_image_adv_run_resumes_and_exports_the_same_two_graphs(tmp_path):
    cfg = {"variant": "aae", "data": "digits", "out": str(tmp_path / "run"), "batch_size": 8, "threads": 1,
           "sample_every": 100, "model": {**TINY, "image_adv": 0.1}}
    train(TrainConfig(**cfg, steps=2), progress=False)
    train(TrainConfig(**cfg, steps=3, resume=True), progress=False)
    _, nets, _ = load_run(tmp_path / "run")
    assert "DX" in nets
    dest = export_run(tmp_path / "run", "tiny-aae-x", out=tmp_path / "art", store=False)
    card = json.loads((dest / "card.json").read_text())
    assert sorted(card["graphs"]) == ["encoder", "generator"] and card["steps"] == 3


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("aae-run")
    train(TrainConfig(variant="aae", data="digits", out=str(out), steps=2, batch_size=8, threads=1,
                      sample_every=2, model=TINY), progress=False)
    return out


def test_export_two_graphs_with_parity(run_dir, tmp_path):
    assert (run_dir / "samples" / "step_000002.png").exists()
    dest = export_run(run_dir, "tiny-aae", out=tmp_path / "art", store=False)
    assert sorted(p.name for p in dest.iterdir()) == ["card.json", "card.md", "encoder.fp16.onnx", "encoder.onnx",
                                                     "generator.fp16.onnx", "generator.onnx", "metrics.csv"]
    card = json.loads((dest / "card.json").read_text())
    assert card["task"] == "reconstruct" and card["latent_dim"] == 8
    for role in ("generator", "encoder"):
        assert card["graphs"][role]["parity_max_abs_diff"] <= 1e-4

    _, nets, _ = load_run(run_dir)
    z = torch.randn(5, 8)
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        img, code = nets["Dec"](z).numpy(), nets["E"](x).numpy()
    gen = ort.InferenceSession(str(dest / "generator.onnx"), providers=["CPUExecutionProvider"])
    enc = ort.InferenceSession(str(dest / "encoder.onnx"), providers=["CPUExecutionProvider"])
    got_img = gen.run(None, {"z": z.numpy()})[0]
    got_code = enc.run(None, {enc.get_inputs()[0].name: x.numpy()})[0]
    assert got_img.shape == (5, 1, 16, 16) and np.abs(got_img - img).max() <= 1e-4
    assert got_code.shape == (5, 8) and np.abs(got_code - code).max() <= 1e-4
    assert [o.name for o in enc.get_outputs()] == ["code"]


# -- the mixture prior (prior="mixture") ---------------------------------------------------
MIX = {**TINY, "prior": "mixture", "prior_components": 10, "prior_radius": 4.0}


def test_mixture_prior_draws_every_component_equally_and_inverts_exactly():
    from zoo.aae import MixturePrior

    m = MixturePrior(8, 10, 4.0)
    u = torch.randn(100_000, 9, generator=torch.Generator().manual_seed(0))
    codes = m.to_code(u)
    nearest = ((codes[:, None] - m.means[None]) ** 2).sum(-1).argmin(1)
    shares = torch.bincount(nearest, minlength=10).float() / len(u)
    assert shares.min() > 0.09 and shares.max() < 0.11, shares  # equal shares; unit Gaussians 5.7 apart rarely cross
    offsets = codes - m.means[nearest]
    assert abs(float(offsets.std()) - 1) < 0.02 and float(offsets.mean().abs()) < 0.02
    back = m.from_code(codes)
    assert torch.allclose(m.to_code(back), codes, atol=1e-6)
    assert set(back[:, 0].unique().tolist()) <= set(m.centres.tolist())


def test_mixture_prior_config_is_checked():
    with pytest.raises(ValueError, match="2 x latent_dim"):
        AAE.Config(**{**MIX, "prior_components": 17})
    with pytest.raises(ValueError):
        AAE.Config(**{**MIX, "prior": "laplace"})


def test_mixture_prior_samples_are_what_the_artifact_serves(tmp_path):
    """Training draws codes the way the exported graph maps serving's standard normals."""
    train(TrainConfig(variant="aae", data="digits", out=str(tmp_path / "run"), steps=2, batch_size=8, threads=1,
                      sample_every=100, model={**MIX, "image_adv": 0.1}), progress=False)
    v, nets, _ = load_run(tmp_path / "run")
    assert v.latent_dim == 9 and v.config.latent_dim == 8
    codes = v.prior(64, generator=torch.Generator().manual_seed(3))
    assert codes.shape == (64, 8) and codes.abs().max(1).values.min() > 1  # near the centres, not N(0, I)'s origin
    dest = export_run(tmp_path / "run", "tiny-aae-mix", out=tmp_path / "art", store=False)
    card = json.loads((dest / "card.json").read_text())
    assert card["latent_dim"] == 9
    gen = ort.InferenceSession(str(dest / "generator.onnx"), providers=["CPUExecutionProvider"])
    enc = ort.InferenceSession(str(dest / "encoder.onnx"), providers=["CPUExecutionProvider"])
    z = torch.randn(6, 9, generator=torch.Generator().manual_seed(5))
    x = torch.rand(6, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        want = v.sample(nets, 6, torch.Generator().manual_seed(5)).numpy()
        recon = nets["Dec"](nets["E"](x)).numpy()
    assert np.abs(gen.run(None, {"z": z.numpy()})[0] - want).max() <= 1e-4
    served_code = enc.run(None, {"image": x.numpy()})[0]
    assert served_code.shape == (6, 9)
    # /reconstruct in the served space: generator(encoder(x)) is the decoder on the encoder's own code
    assert np.abs(gen.run(None, {"z": served_code})[0] - recon).max() <= 1e-4

    # and serving (no torch, standard normals only) loads it and reconstructs through it unchanged
    from PIL import Image

    from serving.api import load_artifact

    gan = load_artifact(dest).gan
    digit = ((x[0, 0].numpy() + 1) * 127.5).round().astype(np.uint8)
    with torch.no_grad():
        want_recon = nets["Dec"](nets["E"](torch.from_numpy(digit[None, None] / 127.5 - 1).float()))
    want_u8 = ((want_recon[0, 0].numpy() + 1) * 127.5).clip(0, 255)
    assert gan.encode(Image.fromarray(digit)).shape == (9,)
    got = gan.reconstruct(Image.fromarray(digit))
    assert got.shape == (16, 16, 1) and np.abs(got[..., 0].astype(float) - want_u8).max() <= 1.0
