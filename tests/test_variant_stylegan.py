"""StyleGAN: mapping/truncation, style mixing, noise inputs, one real step, three ONNX graphs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.config import TrainConfig
from training.export import export_run, load_run
from training.loop import train
from training.losses import AdversarialLoss
from zoo import registry
from zoo.layers import EqualLinear, MinibatchStdDev
from zoo.spec import DataInfo, StepContext
from zoo.stylegan import StyleGAN

TINY = {"image_size": 16, "latent_dim": 16, "w_dim": 16, "fmap_base": 64, "fmap_max": 16}
L, K = 6, 2 * (4 * 4 + 8 * 8 + 16 * 16)  # 16x16: two style layers at 4, 8, 16


def tiny(channels: int = 1, **kw) -> StyleGAN:
    return StyleGAN(StyleGAN.Config(**(TINY | kw)), DataInfo(channels=channels, num_classes=10, name="digits"))


def built(seed: int = 0, channels: int = 1):
    """A tiny eval-mode generator whose noise scales, styles and w_avg are not at their zero init."""
    torch.manual_seed(seed)
    v = tiny(channels)
    nets = v.build()
    G = nets["G"].eval()
    with torch.no_grad():
        for layer in G.synthesis.layers:
            layer.noise_strength.normal_(0.0, 0.5)
            layer.style.bias.normal_(0.0, 0.3)
        G.mapping.w_avg.normal_()
    return v, nets, G


def make_ctx(variant, nets, batch, loss=None) -> StepContext:
    opts = {g: torch.optim.Adam([p for n in names for p in nets[n].parameters()], 2e-3, betas=(0.0, 0.99))
            for g, names in variant.optimizer_groups.items()}
    return StepContext(nets, opts, loss or AdversarialLoss(), 0, 1, lambda: batch, lambda n, x: x)


def test_registered_and_declares_layers_and_noise():
    assert registry.get_variant("stylegan") is StyleGAN
    v = tiny()
    assert v.task == "generate" and v.num_classes == 0 and v.ema_modules == ("G",)
    assert (v.num_layers, v.noise_dim) == (L, K)
    assert v.metadata() == {"num_layers": L, "noise_dim": K, "w_dim": 16}
    full = StyleGAN(StyleGAN.Config(), DataInfo(channels=1, num_classes=10))
    assert (full.num_layers, full.noise_dim) == (8, 2 * (16 + 64 + 256 + 1024))
    G = full.build()["G"]
    assert (G.num_ws, G.noise_dim) == (8, full.noise_dim)
    assert len(G.mapping.fcs) == 8 and all(fc.lr_mul == 0.01 for fc in G.mapping.fcs)


def test_shapes_sample_and_preview():
    v, nets, G = built(channels=3)
    z, noise = torch.randn(5, 16), torch.randn(5, K)
    with torch.no_grad():
        w = G.mapping(z)
        assert w.shape == (5, L, 16) and torch.equal(w[:, 0], w[:, -1])  # one w, broadcast to every layer
        x = G.synthesis(w, noise)
        assert x.shape == (5, 3, 16, 16) and x.abs().max() <= 1  # tanh output
        assert torch.equal(G(z, noise=noise), x)
        assert v.sample(nets, 4, torch.Generator().manual_seed(0)).shape == (4, 3, 16, 16)
        fixed = v.preview_inputs(64, torch.Generator().manual_seed(0))
        assert fixed["z"].shape == (64, 16) and fixed["noise"].shape == (64, K)
        assert v.preview(nets, fixed).shape == (64, 3, 16, 16)


def test_truncation_psi():
    _, _, G = built()
    z = torch.randn(4, 16) * 3
    with torch.no_grad():
        w0 = G.mapping(z, torch.tensor(0.0))
        assert torch.allclose(w0, G.mapping.w_avg.expand(4, L, 16), atol=1e-6)  # any z: w_avg
        assert torch.allclose(G.mapping(z, torch.tensor(1.0)), G.mapping(z), atol=1e-6)
        half = G.mapping(z, 0.5)
        assert torch.allclose(half, 0.5 * (G.mapping(z) + w0), atol=1e-5)


def test_style_mixing_crossover():
    _, _, G = built()
    z, z2, noise = torch.randn(3, 16), torch.randn(3, 16), torch.randn(3, K)
    psi = torch.tensor(0.7)
    with torch.no_grad():
        plain = G(z, psi, noise=noise)
        assert torch.equal(G(z, psi, z2, torch.tensor(-1), noise), plain)  # -1: no mixing
        assert torch.equal(G(z, psi, z2, torch.tensor(L), noise), plain)  # past the last layer: none either
        assert torch.equal(G(z, psi, z2, torch.tensor(0), noise), G(z2, psi, noise=noise))  # all from z2
        fine = G(z, psi, z2, torch.tensor(L - 2), noise)  # only the last resolution's styles from z2
        coarse = G(z, psi, z2, torch.tensor(2), noise)
        assert (fine - plain).abs().max() > 1e-3 and (coarse - plain).abs().max() > 1e-3
        assert not torch.equal(fine, coarse)
        # layers < crossover keep z's style, layers >= crossover take z2's
        w = G.mapping(z, psi)
        w2 = G.mapping(z2, psi)
        from zoo.stylegan import mix_styles

        mixed = mix_styles(w, w2, torch.tensor(4))
        assert torch.equal(mixed[:, :4], w[:, :4]) and torch.equal(mixed[:, 4:], w2[:, 4:])


def test_noise_inputs_change_the_image():
    _, _, G = built()
    z = torch.randn(2, 16)
    n1, n2 = torch.randn(2, K), torch.randn(2, K)
    with torch.no_grad():
        a, b = G(z, noise=n1), G(z, noise=n2)
        assert torch.equal(a, G(z, noise=n1))  # deterministic given the noise
        assert (a - b).abs().max() > 1e-3
        # the last block of noise is the last layer's 16x16 map: changing only it changes pixels
        n3 = n1.clone()
        n3[:, -256:] = torch.randn(2, 256)
        assert (G(z, noise=n3) - a).abs().max() > 1e-4
        # zero noise scales: the noise input has no effect (the state after build)
        for layer in G.synthesis.layers:
            layer.noise_strength.zero_()
        assert torch.equal(G(z, noise=n1), G(z, noise=n2))


def test_layers_equalised_lr_and_minibatch_stddev():
    fc = EqualLinear(64, 32, lr_mul=0.01)
    assert 80 < float(fc.weight.detach().std()) < 120  # stored / lr_mul, scaled back at runtime
    assert 0.5 < float(fc(torch.randn(512, 64)).detach().std()) < 2
    mb = MinibatchStdDev(4)
    x = torch.randn(6, 5, 4, 4)  # 6 is not a multiple of 4: groups of 3
    y = mb(x)
    assert y.shape == (6, 6, 4, 4) and torch.equal(y[:, :5], x)
    same = mb(torch.ones(8, 5, 4, 4))
    assert float(same[:, 5].abs().max()) < 1e-3  # identical images: no spread
    assert float(y[:, 5].min()) > 0.1


@pytest.mark.parametrize("r1", [0.0, 1.0])
def test_one_train_step_updates_g_d_and_w_avg(r1):
    torch.manual_seed(0)
    v = tiny()
    nets = v.build()
    batch = {"image": torch.rand(4, 1, 16, 16) * 2 - 1, "label": torch.zeros(4, dtype=torch.long)}
    before = {k: {n: p.detach().clone() for n, p in m.named_parameters()} for k, m in nets.items()}
    logs = v.train_step(make_ctx(v, nets, batch, AdversarialLoss(r1_weight=r1)))
    assert set(logs) == {"loss_d", "loss_g"} and all(np.isfinite(list(logs.values())))
    for k, m in nets.items():
        for n, p in m.named_parameters():  # every parameter, the mapping's (lr x 0.01) included
            assert not torch.equal(before[k][n], p), f"{k}.{n} unchanged"
    assert float(nets["G"].mapping.w_avg.abs().sum()) > 0  # the truncation centre moved from zero


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("stylegan-run")
    train(TrainConfig(variant="stylegan", data="digits", out=str(out), steps=2, batch_size=8, threads=1,
                      sample_every=2, model=TINY), progress=False)
    return out


def test_export_three_graphs_with_parity(run_dir, tmp_path):
    assert (run_dir / "samples" / "step_000002.png").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dest = export_run(run_dir, "tiny-stylegan", out=tmp_path / "art", store=False)
    card = json.loads((dest / "card.json").read_text())
    assert card["num_layers"] == L and card["noise_dim"] == K
    graphs = card["graphs"]
    assert graphs["generator"]["inputs"] == ["z", "psi", "z2", "crossover", "noise"]
    assert graphs["mapping"]["inputs"] == ["z", "psi"] and graphs["mapping"]["outputs"] == ["w"]
    assert graphs["synthesis"]["inputs"] == ["w", "noise"]
    assert all(g["parity_max_abs_diff"] <= 1e-4 for g in graphs.values())
    assert sorted(p.name for p in dest.iterdir()) == [  # weights inside, no .data files; fp16 copies for GPUs
        "card.json", "card.md", "generator.fp16.onnx", "generator.onnx", "mapping.fp16.onnx", "mapping.onnx",
        "metrics.csv", "synthesis.fp16.onnx", "synthesis.onnx"]

    _, nets, _ = load_run(run_dir)
    G = nets["G"]
    with torch.no_grad():  # make the checks meaningful: noise and w_avg matter
        for layer in G.synthesis.layers:
            layer.noise_strength.normal_(0.0, 0.5)
        G.mapping.w_avg.normal_()
    # re-export the perturbed generator, so parity covers noise scales and w_avg too
    variant = tiny()
    from training.export import export_graph

    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for g in variant.export_graphs(nets):
            paths[g.role] = tmp_path / f"{g.role}.onnx"
            export_graph(g, paths[g.role], {})
    sess = {r: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for r, p in paths.items()}
    psi = np.array(0.7, dtype=np.float32)
    for b in (1, 3):
        z, z2 = torch.randn(b, 16), torch.randn(b, 16)
        noise = torch.randn(b, K)
        for cross in (-1, 3):
            with torch.no_grad():
                want = G(z, torch.tensor(0.7), z2, torch.tensor(cross), noise).numpy()
            got = sess["generator"].run(None, {"z": z.numpy(), "psi": psi, "z2": z2.numpy(),
                                               "crossover": np.array(cross, dtype=np.int64),
                                               "noise": noise.numpy()})[0]
            assert got.shape == (b, 1, 16, 16) and np.abs(got - want).max() <= 1e-4
        with torch.no_grad():
            w_want = G.mapping(z, torch.tensor(0.7)).numpy()
        w = sess["mapping"].run(None, {"z": z.numpy(), "psi": psi})[0]
        assert w.shape == (b, L, 16) and np.abs(w - w_want).max() <= 1e-4
        w0 = sess["mapping"].run(None, {"z": z.numpy(), "psi": np.array(0.0, dtype=np.float32)})[0]
        assert np.abs(w0 - G.mapping.w_avg.numpy()).max() <= 1e-6
        with torch.no_grad():
            img_want = G.synthesis(torch.from_numpy(w), noise).numpy()
        img = sess["synthesis"].run(None, {"w": w, "noise": noise.numpy()})[0]
        assert np.abs(img - img_want).max() <= 1e-4
        # mapping + synthesis is the unmixed generator, as serving's /interpolate relies on
        plain = sess["generator"].run(None, {"z": z.numpy(), "psi": psi, "z2": z2.numpy(),
                                             "crossover": np.array(-1, dtype=np.int64), "noise": noise.numpy()})[0]
        assert np.abs(plain - img).max() <= 1e-5
