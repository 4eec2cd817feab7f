"""The metric math: plain functions on feature/pixel matrices, registered by name.

Every function takes ``[N, ...]`` arrays (torch tensors or numpy arrays; flattened from dim 1)
and works in float64 unless stated. None of them knows about GANs, datasets or classifiers:
``suite.py`` decides what goes in (classifier features, pixels, codes) and how many samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from training.evaluation.registry import register_metric

Array = Any  # torch.Tensor or np.ndarray


def as_matrix(x: Array, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[N, ...]`` -> ``[N, D]`` torch tensor of ``dtype`` on the CPU."""
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach()
    return t.reshape(t.shape[0], -1).to(device="cpu", dtype=dtype)


def sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``[len(x), len(y)]`` (via the Gram matrix, clamped at 0)."""
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return d2.clamp_min_(0.0)


# -- Fréchet distance -------------------------------------------------------------------------
def gaussian_stats(feats: Array) -> tuple[np.ndarray, np.ndarray]:
    f = as_matrix(feats).numpy()
    if f.shape[0] < 2:
        raise ValueError("need at least 2 feature vectors for a covariance")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2).

    The trace of the matrix square root is taken as the sum of square roots of the
    eigenvalues of the symmetric PSD matrix S1^1/2 S2 S1^1/2 (same spectrum as S1 S2), which
    is real by construction: no complex parts to discard as with ``scipy.linalg.sqrtm``.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    w, v = np.linalg.eigh(s1)
    s1_half = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    ev = np.linalg.eigvalsh(s1_half @ s2 @ s1_half)
    tr_covmean = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


@register_metric("fid", space="classifier features", better="lower", ideal=0.0)
def fid(fake: Array, real: Array) -> dict[str, float]:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017).

    Biased upwards for small N (the bias shrinks like 1/N): compare numbers only at equal
    sample counts."""
    return {"fid": frechet_distance(*gaussian_stats(fake), *gaussian_stats(real))}


# -- KID ----------------------------------------------------------------------------------------
def kid_subsets(
    fake: Array, real: Array, num_subsets: int = 50, subset_size: int = 1000, seed: int = 0
) -> np.ndarray:
    """Unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, once per random subset pair."""
    x_all, y_all = as_matrix(fake), as_matrix(real)
    d = x_all.shape[1]
    m = min(subset_size, x_all.shape[0], y_all.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    rng = np.random.default_rng(seed)
    out = np.empty(num_subsets)
    for i in range(num_subsets):
        x = x_all[torch.from_numpy(rng.choice(x_all.shape[0], m, replace=False))]
        y = y_all[torch.from_numpy(rng.choice(y_all.shape[0], m, replace=False))]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        out[i] = float(
            (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
            + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2.0 * kxy.mean()
        )
    return out


@register_metric("kid", space="classifier features", better="lower", ideal=0.0)
def kid(fake: Array, real: Array, num_subsets: int = 50, subset_size: int = 1000, seed: int = 0) -> dict[str, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial
    kernel, mean and standard deviation over random subsets.

    Unbiased, so it can be slightly negative when the two sets come from one distribution."""
    vals = kid_subsets(fake, real, num_subsets, subset_size, seed)
    return {"kid": float(vals.mean()), "kid_std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}


# -- precision / recall -------------------------------------------------------------------------
def knn_radii(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} points, got {x.shape[0]}")
    out = []
    for i in range(0, x.shape[0], chunk):
        d2 = sq_dists(x[i : i + chunk], x)
        # the point itself is among the k+1 smallest (distance 0): the (k+1)-th smallest is the k-th neighbour
        out.append(d2.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(out).sqrt()


def manifold_coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    """Share of ``points`` inside at least one ball (centre, radius)."""
    inside = 0
    r2 = radii.square()
    for i in range(0, points.shape[0], chunk):
        d2 = sq_dists(points[i : i + chunk], centres)
        inside += int((d2 <= r2[None, :]).any(1).sum())
    return inside / points.shape[0]


@register_metric("pr", space="classifier features", better="higher", ideal=1.0)
def precision_recall(fake: Array, real: Array, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): precision is the share of
    fakes inside the real k-NN manifold (union of balls reaching each real point's k-th
    neighbour), recall the share of reals inside the fake manifold.

    Precision measures fidelity, recall diversity; a collapsed generator keeps precision but
    loses recall."""
    x, y = as_matrix(fake), as_matrix(real)
    return {
        "precision": manifold_coverage(x, y, knn_radii(y, k)),
        "recall": manifold_coverage(y, x, knn_radii(x, k)),
    }


# -- mode coverage ------------------------------------------------------------------------------
@register_metric("coverage", space="classifier labels", better="higher")
def mode_coverage(probs: Array, num_classes: int | None = None, confidence: float = 0.9) -> dict[str, float]:
    """Class histogram of the classifier's predictions on samples.

    ``coverage_classes``: classes receiving at least a tenth of the uniform share (1/(10K));
    ``coverage_min_share``: the rarest class's share (uniform: 1/K); ``coverage_entropy``: of
    the histogram, in nats (uniform: ln K); ``coverage_confident``: share of samples whose top
    class probability exceeds ``confidence`` (a proxy for recognisable images);
    ``coverage_of``: K, which the other numbers are read against."""
    p = as_matrix(probs)
    k = num_classes or p.shape[1]
    hist = torch.bincount(p.argmax(1), minlength=k).double() / p.shape[0]
    nz = hist[hist > 0]
    return {
        "coverage_classes": int((hist >= 0.1 / k).sum()),
        "coverage_min_share": float(hist.min()),
        "coverage_entropy": max(0.0, float(-(nz * nz.log()).sum())),
        "coverage_confident": float((p.max(1).values > confidence).double().mean()),
        "coverage_of": k,
    }


# -- kernel MMD (Gaussian kernel, median heuristic) ---------------------------------------------
def median_bandwidth(d2: torch.Tensor) -> float:
    """Median heuristic: the median Euclidean distance between distinct pooled points."""
    n = d2.shape[0]
    iu = torch.triu_indices(n, n, offset=1)
    med = float(d2[iu[0], iu[1]].median().sqrt())
    return med if med > 0 else 1.0


@register_metric("mmd", space="pixels (or any vectors)", better="lower", ideal=0.0)
def gaussian_mmd(x: Array, y: Array, bandwidth: float | None = None) -> dict[str, float]:
    """Kernel MMD with a Gaussian kernel k(a, b) = exp(-||a - b||^2 / (2 s^2)), s from the
    median heuristic on the pooled sample unless given.

    ``mmd2`` is the unbiased estimate of MMD^2 (Gretton et al. 2012, eq. 3: may dip below 0
    when x and y share a distribution); ``mmd`` is the square root of the biased (V-statistic)
    estimate, always >= 0 and exactly 0 for identical sets."""
    a, b = as_matrix(x), as_matrix(y)
    n, m = a.shape[0], b.shape[0]
    if n < 2 or m < 2:
        raise ValueError("MMD needs at least 2 points per set")
    z = torch.cat([a, b])
    d2 = sq_dists(z, z)
    s = bandwidth if bandwidth is not None else median_bandwidth(d2)
    k = torch.exp(-d2 / (2.0 * s * s))
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    mmd2_u = (
        (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        - 2.0 * kxy.mean()
    )
    mmd2_b = kxx.mean() + kyy.mean() - 2.0 * kxy.mean()
    return {"mmd2": float(mmd2_u), "mmd": math.sqrt(max(float(mmd2_b), 0.0)), "mmd_bandwidth": float(s)}


# -- 1-NN two-sample test -----------------------------------------------------------------------
@register_metric("one_nn", space="pixels (or any vectors)", better="0.5", ideal=0.5)
def one_nn_accuracy(fake: Array, real: Array) -> dict[str, float]:
    """Leave-one-out 1-nearest-neighbour two-sample test (Lopez-Paz & Oquab 2017; Xu et al.
    2018): label the pooled points by set, predict each from its nearest other point.

    0.5 when the sets are indistinguishable; 1.0 when they are separable; near 0 when every
    fake is a copy of a real (memorisation: each point's nearest neighbour is its twin in the
    other set). Ties go to the lowest index (fakes first). ``one_nn_acc_fake`` near 1 with
    ``one_nn_acc_real`` near 0.5 points at collapse (fakes cluster among themselves)."""
    x, y = as_matrix(fake), as_matrix(real)
    n = x.shape[0]
    z = torch.cat([x, y])
    labels = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(y.shape[0], dtype=torch.long)])
    d2 = sq_dists(z, z)
    d2.fill_diagonal_(float("inf"))
    correct = (labels[d2.argmin(1)] == labels).double()
    return {
        "one_nn_acc": float(correct.mean()),
        "one_nn_acc_fake": float(correct[:n].mean()),
        "one_nn_acc_real": float(correct[n:].mean()),
    }


# -- Parzen window ------------------------------------------------------------------------------
PARZEN_SIGMAS = tuple(float(s) for s in np.logspace(-1, 0, 10))  # Goodfellow et al.'s grid


def parzen_log_likelihoods(
    samples: Array, points: Array, sigmas: Sequence[float], batch: int = 256
) -> np.ndarray:
    """``[len(sigmas), len(points)]`` log-densities (nats) of ``points`` under isotropic
    Gaussian kernels of width sigma centred on ``samples``:

        log p(x) = logmeanexp_i(-||x - mu_i||^2 / (2 sigma^2)) - d/2 log(2 pi sigma^2)

    Distances in float32 (the expensive part), the log-mean-exp in float64, in batches."""
    mu = as_matrix(samples, torch.float32)
    x_all = as_matrix(points, torch.float32)
    n, d = mu.shape
    sig = torch.tensor(list(sigmas), dtype=torch.float64)
    mu_sq = (mu * mu).sum(1)
    out = torch.empty(len(sig), x_all.shape[0], dtype=torch.float64)
    for i in range(0, x_all.shape[0], batch):
        x = x_all[i : i + batch]
        d2 = ((x * x).sum(1)[:, None] + mu_sq[None, :] - 2.0 * (x @ mu.T)).clamp_min_(0).double()
        for j, s in enumerate(sig):
            out[j, i : i + batch] = torch.logsumexp(-d2 / (2 * s * s), dim=1)
    out -= math.log(n) + 0.5 * d * torch.log(2 * math.pi * sig * sig)[:, None]
    return out.numpy()


@register_metric("parzen", space="pixels in [0, 1]", better="higher")
def parzen(
    samples: Array, test: Array, valid: Array, sigmas: Sequence[float] = PARZEN_SIGMAS
) -> dict[str, float]:
    """Parzen-window log-likelihood (Goodfellow et al. 2014 protocol): a Gaussian kernel
    density on generated samples, its width picked on ``valid`` from the ``sigmas`` grid,
    then the mean log-likelihood of ``test`` in nats with its standard error.

    A poor estimator in high dimension (Theis et al. 2016): see docs/METRICS.md."""
    val = parzen_log_likelihoods(samples, valid, sigmas).mean(1)
    best = float(sigmas[int(np.argmax(val))])
    ll = parzen_log_likelihoods(samples, test, [best])[0]
    return {
        "parzen_ll": float(ll.mean()),
        "parzen_se": float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1 else 0.0,
        "parzen_sigma": best,
    }


# -- per-task metrics ---------------------------------------------------------------------------
@register_metric("label_fidelity", space="classifier labels", better="higher", ideal=1.0)
def label_fidelity(pred: Array, labels: Array, num_classes: int) -> dict[str, Any]:
    """Conditional generation: the classifier's accuracy on samples drawn for each label.

    ``label_acc`` over all samples, ``label_acc_min`` of the worst label, and
    ``label_acc_per_class`` (a list, not a float: drop it from flat rows)."""
    p = torch.as_tensor(np.asarray(pred)).long().view(-1)
    y = torch.as_tensor(np.asarray(labels)).long().view(-1)
    per = []
    for c in range(num_classes):
        sel = y == c
        per.append(float((p[sel] == c).double().mean()) if sel.any() else float("nan"))
    valid = [v for v in per if not math.isnan(v)]
    return {
        "label_acc": float((p == y).double().mean()),
        "label_acc_min": min(valid) if valid else float("nan"),
        "label_acc_per_class": per,
    }


@register_metric("recon", space="pixels in [0, 1]", better="lower", ideal=0.0)
def reconstruction_error(recon: Array, target: Array) -> dict[str, float]:
    """Autoencoder: mean squared and mean absolute error per pixel, images mapped to [0, 1]."""
    r = (as_matrix(recon) + 1) / 2
    t = (as_matrix(target) + 1) / 2
    return {"recon_mse": float((r - t).square().mean()), "recon_l1": float((r - t).abs().mean())}


@register_metric("code_mmd", space="latent codes", better="lower", ideal=0.0)
def code_mmd(codes: Array, prior: Array) -> dict[str, float]:
    """Autoencoder: Gaussian-kernel MMD between encoded test codes and prior samples (AAE's
    goal: q(z) matches p(z) = N(0, I))."""
    r = gaussian_mmd(codes, prior)
    return {"code_mmd2": r["mmd2"], "code_mmd": r["mmd"]}


# -- sharpness --------------------------------------------------------------------------------
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)


def laplacian_variance(images: Array) -> torch.Tensor:
    """Per image: the variance of the 4-neighbour Laplacian of its grey image (``[N, C, H, W]``,
    any range; RGB weighted as ITU-R 601). A blur lowers it, so an output's value over its
    input's says how much detail a translation kept."""
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images.detach()
    x = x.to("cpu", torch.float64)
    if x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)[None, :, None, None]).sum(1, keepdim=True)
    else:
        x = x.mean(1, keepdim=True)
    lap = torch.nn.functional.conv2d(x, _LAPLACIAN[None, None])
    return lap.flatten(1).var(1)


@register_metric("sharpness_ratio")
def sharpness_ratio(output: Array, reference: Array) -> dict[str, float]:
    """Median over images of var(Laplacian(output)) / var(Laplacian(reference)), the images
    paired and at the same size: 1 keeps the reference's detail, 0.03 is a 256-px photo resized
    to 64 px and back."""
    ratio = laplacian_variance(output) / laplacian_variance(reference).clamp_min(1e-12)
    return {"sharpness": float(ratio.median()), "sharpness_q25": float(ratio.quantile(0.25))}
