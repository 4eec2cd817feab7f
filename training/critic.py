"""A critic fitted to a shipped generator, for discriminator rejection sampling (DRS).

The lecture notes' Bayes-optimal discriminator is D*(x) = p_data / (p_data + p_g), so its logit
is log(p_data(x) / p_g(x)). Given it, rejection sampling with acceptance proportional to
exp(logit) turns samples of p_g into samples of p_data (Azadi et al. 2019, "Discriminator
Rejection Sampling"). The GAN's own D is far from optimal at the end of training (it is one
step of a game, not a converged classifier), so, as DRS does, a critic is fitted afresh to the
*frozen* generator: real training images against the exported ONNX graph's samples. That
needs nothing of the variant (any unconditional generator gets one, third-party ones too) and
measures what is shipped, not a checkpoint.

The critic never sees labels or the evaluation suite's classifier; the acceptance rule and its
per-seed draws are ``serving.rejection``, shared by serving and the suite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from serving import rejection
from training.augment import diff_augment, parse_policies
from training.data import ImageData, load_dataset, to_float
from training.evaluation.onnx_models import OnnxArtifact
from training.losses import r1_penalty

log = logging.getLogger("ganzoo.critic")


class Critic(nn.Module):
    """A small conv classifier, real (logit > 0) vs generated: four stride-2 convs, LeakyReLU,
    no normalisation (BatchNorm would make a sample's score depend on its batch)."""

    def __init__(self, channels: int, image_size: int, width: int = 64, pool: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
        c, size = channels, image_size // pool
        for i in range(3):
            out = width * 2**i
            layers += [nn.Conv2d(c, out, 4, 2, 1), nn.LeakyReLU(0.2)]
            c, size = out, size // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(c * size * size, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image)).squeeze(1)


@dataclass
class CriticFit:
    critic: Critic
    steps: int
    seconds: float
    held_out_accuracy: float  # real test images vs fresh samples, at logit 0
    held_out_auc: float


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative)."""
    scores = np.concatenate([pos, neg])
    ranks = scores.argsort().argsort().astype(np.float64) + 1
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def scores(critic: nn.Module, images: torch.Tensor, batch: int = 500) -> np.ndarray:
    critic.eval()
    with torch.no_grad():
        return torch.cat([critic(images[a : a + batch]) for a in range(0, len(images), batch)]).numpy()


def fit_critic(
    art: OnnxArtifact, train: ImageData, test: ImageData, steps: int = 2000, batch_size: int = 64,
    lr: float = 2e-4, seed: int = 0, width: int = 64, pool: int = 1, r1_weight: float = 0.0, augment: str = "",
) -> CriticFit:
    """Train a ``Critic`` for ``steps`` steps of real ``train`` images vs the artifact's samples
    (fresh ones every step: the generator is a sampler, not a dataset, so the fake side cannot be
    memorised); report its accuracy and AUC on ``test`` vs unseen samples."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    critic = Critic(train.channels, train.images.shape[-1], width, pool)
    opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.999))
    loss_fn = nn.BCEWithLogitsLoss()
    policies = parse_policies(augment) if augment else ()
    t0 = time.monotonic()
    for step in range(steps):
        idx = torch.randint(len(train), (batch_size,), generator=g)
        real = to_float(train.images[idx])
        fake = art.sample(batch_size, g, filtered=False)
        critic.train()
        x = torch.cat([real, fake])
        if policies:
            x = diff_augment(x, policies)
        target = torch.cat([torch.ones(batch_size), torch.zeros(batch_size)])
        loss = loss_fn(critic(x), target)
        if r1_weight:
            loss = loss + r1_weight * r1_penalty(critic, x[:batch_size])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 500 == 0:
            log.info("critic step %d/%d loss %.4f", step, steps, float(loss.detach()))
    seconds = time.monotonic() - t0
    acc, auc = held_out(critic, art, test, seed)
    return CriticFit(critic, steps, seconds, acc, auc)


def calibrate(critic: nn.Module, art: OnnxArtifact, quantile: float = 0.5, temperature: float = 0.5,
              n: int = 4000, seed: int = 2) -> dict[str, float]:
    """The acceptance rule's constants from the critic's logits on ``n`` unseen samples: the
    threshold is their ``quantile``; the temperature is ``temperature`` times their standard
    deviation, so the rule is stated in units of the critic's own spread."""
    d = scores(critic, art.sample(n, torch.Generator().manual_seed(seed), filtered=False))
    rule = rejection.Rule(threshold=float(np.quantile(d, quantile)), temperature=float(temperature * d.std()))
    return {"threshold": rule.threshold, "temperature": rule.temperature,
            "acceptance": float(rule.accept_prob(d).mean()), "quantile": quantile,
            "temperature_in_std": temperature}


def load_data(art: OnnxArtifact, data_root: str | Path | None) -> tuple[ImageData, ImageData]:
    dataset = str(art.card.get("dataset") or "")
    channels = int(art.card.get("channels") or 0) or None
    kw: dict[str, Any] = {"image_size": art.image_size, "channels": channels}
    train, test = load_dataset(dataset, data_root, "train", **kw), load_dataset(dataset, data_root, "test", **kw)
    assert isinstance(train, ImageData) and isinstance(test, ImageData)
    return train, test


def card_path(art_dir: Path) -> Path:
    return Path(art_dir) / "card.json"


def read_card(art_dir: Path) -> dict[str, Any]:
    return json.loads(card_path(art_dir).read_text())


def export_critic(critic: nn.Module, art_dir: str | Path, entry: dict[str, Any]) -> Path:
    """Write ``critic.onnx`` (image [B, C, H, W] -> logit [B], parity with PyTorch checked) into
    the artifact with its checked fp16 copy (training/fp16.py: a GPU server loads every role's),
    and record both and the rejection ``entry`` in card.json."""
    from training.export import export_graph, git_commit
    from training.fp16 import convert, fp16_name
    from zoo.spec import ExportGraph

    art_dir = Path(art_dir)
    card = read_card(art_dir)
    c, size = int(card.get("channels") or 1), int(card.get("image_size") or 32)
    graph = ExportGraph("critic", critic.eval(), {"image": torch.zeros(1, c, size, size)}, ["logit"],
                        {"image": {0: "batch"}, "logit": {0: "batch"}})
    path = art_dir / "critic.onnx"
    diff = export_graph(graph, path, {"role": "critic", "variant": str(card.get("variant", ""))})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    card.setdefault("graphs", {})["critic"] = {
        "file": path.name, "sha256": digest, "inputs": ["image"],
        "outputs": ["logit"], "parity_max_abs_diff": diff, "bytes": path.stat().st_size,
    }
    half = art_dir / fp16_name(path.name)
    half_diff = convert(path, half, size)
    card["graphs"]["critic"]["fp16"] = {
        "file": half.name, "sha256": hashlib.sha256(half.read_bytes()).hexdigest(), "bytes": half.stat().st_size,
        "max_abs_diff_vs_fp32": half_diff,
    }
    # the metrics of the generator's own samples, for comparison once eval re-measures the card
    before = card.get("rejection", {}).get("unfiltered_metrics") if "rejection" in card else card.get("metrics")
    card["rejection"] = {**entry, "git_commit": git_commit(), "unfiltered_metrics": before or {}}
    # a new version of the artifact: the store keys imports by this digest (serving/import_models.py)
    base = str(card.get("sha256_generator") or card.get("sha256") or "")
    card["sha256_generator"] = base
    card["sha256"] = hashlib.sha256(f"{base}:{digest}".encode()).hexdigest()
    card_path(art_dir).write_text(json.dumps(card, indent=2) + "\n")
    return path


def _filterable(art_dir: str | Path, quantile: float, temperature: float) -> OnnxArtifact:
    art = OnnxArtifact(art_dir, threads=torch.get_num_threads())
    # any artifact /generate serves from a generator graph: a GAN's, or an autoencoder's decoder
    # on prior samples (aae, task "reconstruct"); a translator has none
    if not art.has("generator"):
        raise ValueError(f"{art.name}: a critic filters generated images; this artifact has no generator")
    if art.conditional:
        raise ValueError(f"{art.name}: rejection sampling is for unconditional generators (this one takes a label)")
    if not 0.0 < quantile < 1.0 or not temperature > 0:
        raise ValueError("quantile must be in (0, 1) and temperature > 0")
    return art


def held_out(
    critic: nn.Module, art: OnnxArtifact, test: ImageData, seed: int = 0, n: int = 2000
) -> tuple[float, float]:
    """Accuracy (at logit 0) and AUC of real ``test`` images vs unseen samples."""
    n = min(n, len(test))
    real_s = scores(critic, to_float(test.images[:n]))
    fake_s = scores(critic, art.sample(n, torch.Generator().manual_seed(seed + 1), filtered=False))
    return float(((real_s > 0).sum() + (fake_s <= 0).sum()) / (2 * n)), _auc(real_s, fake_s)


def add_critic(
    art_dir: str | Path, data_root: str | Path | None, steps: int = 1500, quantile: float = 0.5,
    temperature: float = 1.0, seed: int = 0, command: str = "",
) -> dict[str, Any]:
    """Fit, calibrate and export a critic into an exported artifact; returns the card's new
    ``rejection`` entry. Refuses conditional generators (a critic per class is not built)."""
    art = _filterable(art_dir, quantile, temperature)
    train, test = load_data(art, data_root)
    fit = fit_critic(art, train, test, steps=steps, seed=seed)
    cal = calibrate(fit.critic, art, quantile=quantile, temperature=temperature)
    entry = {**cal, "max_candidates": rejection.MAX_CANDIDATES, "source": "fitted", "critic_steps": fit.steps,
             "critic_seconds": round(fit.seconds, 1), "held_out_accuracy": round(fit.held_out_accuracy, 4),
             "held_out_auc": round(fit.held_out_auc, 4), "command": command}
    export_critic(fit.critic, art_dir, entry)
    return read_card(Path(art_dir))["rejection"]


class RunMismatch(ValueError):
    """The run's generator is not the one the artifact was exported from."""


def critic_from_run(
    art_dir: str | Path, run: str | Path, data_root: str | Path | None, net: str = "D", checkpoint: str = "latest",
    quantile: float = 0.5, temperature: float = 1.0, seed: int = 0, command: str = "",
) -> dict[str, Any]:
    """Use the training run's own discriminator ``net`` as the critic, instead of fitting one.

    D co-evolved with G, so it has learned what G gets wrong at the level of the digit's shape,
    not only its stroke texture (on dcgan, filtering by it raises the confident share far more
    than a critic fitted afterwards does; docs/RESULTS.md). It must be the D of the very
    generator the artifact holds: the run's exported weights must hash to the card's
    ``sha256_generator``, else this refuses (``RunMismatch``). BatchNorm runs in eval mode, so a
    sample's score does not depend on its batch."""
    from training.export import load_run, weights_sha256

    art = _filterable(art_dir, quantile, temperature)
    variant, nets, state = load_run(run, checkpoint)
    if net not in nets:
        raise ValueError(f"{run}: the {variant.name} run has no net {net!r} (it has {', '.join(sorted(nets))})")
    card = read_card(Path(art_dir))
    digest = weights_sha256([g.module for g in variant.export_graphs(nets)])
    want = str(card.get("sha256_generator") or card.get("sha256") or "")
    if digest != want:
        raise RunMismatch(f"{run} ({Path(state['checkpoint']).name}, step {state.get('step')}) is not the run "
                          f"{art.name} was exported from: its generator weights hash to {digest[:12]}, the card's to "
                          f"{want[:12]}")
    probe = torch.zeros(2, int(card.get("channels") or 1), art.image_size, art.image_size)
    with torch.no_grad():
        out = nets[net].eval()(probe)
    if out.shape not in ((2,), (2, 1)):
        raise ValueError(f"{net} maps an image batch to {tuple(out.shape)}; a critic gives one logit per image")
    critic = _Logit(nets[net]).eval()  # [B] for scoring, calibration and the exported graph alike
    _, test = load_data(art, data_root)
    acc, auc = held_out(critic, art, test, seed)
    cal = calibrate(critic, art, quantile=quantile, temperature=temperature)
    entry = {**cal, "max_candidates": rejection.MAX_CANDIDATES, "source": f"run:{net}",
             "critic_steps": int(state.get("step") or 0), "critic_seconds": 0.0,
             "held_out_accuracy": round(acc, 4), "held_out_auc": round(auc, 4), "command": command}
    export_critic(critic, art_dir, entry)
    return read_card(Path(art_dir))["rejection"]


class _Logit(nn.Module):
    """One logit per image, whatever the D's output shape ([B] or [B, 1])."""

    def __init__(self, d: nn.Module) -> None:
        super().__init__()
        self.d = d

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.d(image).reshape(image.shape[0])
