"""What a model is measured with: sampling, reference data and the per-task metric rows.

Every function returns a flat ``dict[str, float | int]`` (one table row / a card's
``metrics``) that carries its own sample counts (``n_*`` keys).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from serving.runtime import TRANSLATE_SIZE  # /translate's default working size, up to the input's own
from training.data import ImageData, UnpairedData, load_dataset, to_float
from training.evaluation import metrics as M
from training.evaluation.classifier import TrainedClassifier, canonical_name, get_classifier

log = logging.getLogger(__name__)

SampleFn = Callable[[int, torch.Generator], torch.Tensor]  # (n, generator) -> images [n, C, H, W] in [-1, 1]
LabelFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (labels [n], generator) -> images
ImageFn = Callable[[torch.Tensor], torch.Tensor]  # images [-1, 1] -> images / codes

PARZEN_DATASETS = ("mnist", "fashion_mnist")
NATIVE_SIZE = {"mnist": 28, "fashion_mnist": 28}


# -- sampling -------------------------------------------------------------------------------------
def as_images(x: Any) -> torch.Tensor:
    """A sample batch (tensor or array) as float32 CPU [-1, 1] images, NaNs set to 0."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.to("cpu", torch.float32)
    if t.dim() == 3:
        t = t[:, None]
    return torch.nan_to_num(t).clamp_(-1.0, 1.0)


@torch.no_grad()
def draw(sample_fn: SampleFn, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """``n`` images from ``sample_fn`` in batches, all drawn from one generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    out, left = [], n
    while left > 0:
        b = min(batch_size, left)
        x = as_images(sample_fn(b, g))
        if x.shape[0] != b:
            raise ValueError(f"sample_fn returned {x.shape[0]} images for n={b}")
        out.append(x)
        left -= b
    return torch.cat(out)


@torch.no_grad()
def _apply(fn: ImageFn, x: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """``fn`` over ``x`` in batches, results as one float32 CPU tensor."""
    outs = []
    for c in x.split(batch_size):
        r = fn(c)
        r = r.detach() if isinstance(r, torch.Tensor) else torch.as_tensor(np.asarray(r))
        outs.append(r.to("cpu", torch.float32))
    return torch.cat(outs)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) / 2.0


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


# -- reference data -------------------------------------------------------------------------------
@dataclass
class Reference:
    """A dataset's real images at one size, loaded once per process."""

    dataset: str
    root: str | None
    image_size: int
    train: ImageData
    test: ImageData
    _feats: dict[Path | None, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def test_features(self, clf: TrainedClassifier) -> tuple[torch.Tensor, torch.Tensor]:
        key = clf.path
        if key not in self._feats:
            self._feats[key] = clf.features_probs(to_float(self.test.images))
        return self._feats[key]


_REFS: dict[tuple, Any] = {}


def load_reference(dataset: str, data_root: str | Path | None, image_size: int = 32,
                   channels: int | None = None) -> Reference:
    name = canonical_name(dataset)
    key = ("ref", name, str(data_root), image_size, channels)
    if key not in _REFS:
        train = load_dataset(name, data_root, "train", image_size=image_size, channels=channels)
        test = load_dataset(name, data_root, "test", image_size=image_size, channels=channels)
        if not isinstance(train, ImageData) or not isinstance(test, ImageData):
            raise ValueError(f"{name}: evaluate_generator needs an image dataset; use evaluate_translation")
        _REFS[key] = Reference(name, None if data_root is None else str(data_root), image_size, train, test)
    return _REFS[key]


def _parzen_sets(name: str, data_root: str | Path | None, size: int, channels: int,
                 n_valid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(test, validation) flattened in [0, 1]; validation = the last ``n_valid`` train images."""
    key = ("parzen", name, str(data_root), size, channels, n_valid)
    if key not in _REFS:
        test = load_dataset(name, data_root, "test", image_size=size, channels=channels)
        train = load_dataset(name, data_root, "train", image_size=size, channels=channels)
        valid = train.images[-n_valid:]
        _REFS[key] = (to_unit(to_float(test.images)).flatten(1), to_unit(to_float(valid)).flatten(1))
    return _REFS[key]


def _subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n]


# -- generation -----------------------------------------------------------------------------------
def evaluate_generator(
    sample_fn: SampleFn,
    dataset: str,
    data_root: str | Path | None,
    n: int = 10000,
    seed: int = 0,
    label_fn: LabelFn | None = None,
    *,
    n_pixel: int = 1000,
    pixel_repeats: int = 5,
    n_pr: int = 5000,
    n_label_per_class: int = 100,
    parzen: bool | None = None,
    n_parzen_valid: int = 1000,
    kid_subsets: int = 100,
    classifier: TrainedClassifier | None = None,
    cache: str | Path | None = None,
    batch_size: int = 500,
) -> dict[str, float]:
    """Every generation metric for ``sample_fn`` against ``dataset``'s test split.

    ``sample_fn(n, generator)`` returns ``n`` images in [-1, 1] at the model's resolution;
    put networks in eval mode first. ``label_fn(labels, generator)``, for conditional models,
    returns one image per requested label. Returns a flat dict (see docs/METRICS.md for the
    keys) including the sample counts.
    """
    t0 = time.monotonic()
    name = canonical_name(dataset)
    fake = draw(sample_fn, n, seed, batch_size)
    size, channels = fake.shape[-1], fake.shape[1]
    ref = load_reference(name, data_root, size, channels)
    clf = classifier or get_classifier(name, data_root, cache=cache)
    f_fake, p_fake = clf.features_probs(fake)
    f_real, _ = ref.test_features(clf)
    out: dict[str, Any] = {"n_samples": n, "n_test": len(ref.test), "classifier_test_acc": clf.test_accuracy}
    out |= M.fid(f_fake, f_real)
    out |= M.kid(f_fake, f_real, num_subsets=kid_subsets, seed=seed)
    k_pr = min(n_pr, n, len(ref.test))
    out |= M.precision_recall(f_fake[:k_pr], f_real[_subset(len(ref.test), k_pr, seed)])
    out["n_pr"] = k_pr
    out |= M.mode_coverage(p_fake, clf.num_classes)
    # pixel space: the course notes' metrics
    # repeated on disjoint sample chunks and fresh test subsets: 1-NN on 1000 vs 1000 moves by
    # ~0.01 between draws, so the mean (and std) is what models are compared by
    k_px = min(n_pixel, n, len(ref.test))
    rows = []
    for r in range(max(1, pixel_repeats)):
        part = fake[r * k_px:(r + 1) * k_px] if (r + 1) * k_px <= n else fake[_subset(n, k_px, seed + r)]
        real_px = to_float(ref.test.images[_subset(len(ref.test), k_px, seed + 1 + r)])
        mmd = M.gaussian_mmd(part, real_px)
        rows.append({"pixel_mmd2": mmd["mmd2"], "pixel_mmd": mmd["mmd"]} | M.one_nn_accuracy(part, real_px))
    for key in rows[0]:
        values = np.array([row[key] for row in rows])
        out[key] = float(values.mean())
        if key in ("pixel_mmd2", "pixel_mmd", "one_nn_acc"):
            out[f"{key}_std"] = float(values.std(ddof=1)) if len(rows) > 1 else 0.0
    out["n_pixel"] = k_px
    out["n_pixel_repeats"] = len(rows)
    if parzen if parzen is not None else name in PARZEN_DATASETS:
        psize = NATIVE_SIZE.get(name, size)
        test_p, valid_p = _parzen_sets(name, data_root, psize, channels, n_parzen_valid)
        out |= M.parzen(to_unit(resize(fake, psize)).flatten(1), test_p, valid_p)
        out |= {"n_parzen": n, "n_parzen_valid": len(valid_p)}
    if label_fn is not None:
        out |= label_fidelity(label_fn, clf, n_label_per_class, seed)
    out["eval_time_s"] = round(time.monotonic() - t0, 1)
    return out


def label_fidelity(label_fn: LabelFn, clf: TrainedClassifier, n_per_class: int = 100, seed: int = 0,
                   batch_size: int = 500) -> dict[str, Any]:
    """Classifier accuracy on images generated for each label (``n_per_class`` each)."""
    labels = torch.arange(clf.num_classes).repeat_interleave(n_per_class)
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        imgs = torch.cat([as_images(label_fn(chunk, g)) for chunk in labels.split(batch_size)])
    r = M.label_fidelity(clf.predict(imgs), labels, clf.num_classes)
    worst = int(np.nanargmin(r["label_acc_per_class"]))
    return {"label_acc": r["label_acc"], "label_acc_min": r["label_acc_min"],
            "label_acc_worst": clf.classes[worst], "n_label": len(labels)}


# -- the cheap keep-best score ------------------------------------------------------------------
def quick_score_id(n: int, draws: int, metric: str = "one_nn") -> str:
    """The scale a keep-best score is on: scores with different ids must not be compared."""
    return f"{metric}:{n}x{draws}"


def quick_score(
    sample_fn: SampleFn,
    reference: torch.Tensor,
    n: int | None = None,
    seed: int = 0,
    features: ImageFn | None = None,
    metric: str = "one_nn",
    draws: int = 1,
) -> float:
    """A cheap score for keeping the best checkpoint during training; lower is better.

    ``reference``: real images in [-1, 1], split into ``draws`` disjoint chunks of ``n``
    (default ``len(reference) // draws``). Draw ``i`` takes ``n`` samples seeded ``seed + i``
    and runs one test against chunk ``i``; the per-side accuracies are pooled over the draws.
    The seeds are fixed, so successive calls see the same latents and differ only by the
    weights (common random numbers: the noise of a difference between two checkpoints is
    smaller than that of either score). One draw of 500 has a std of 0.008-0.012 over seeds
    on a fixed MNIST dcgan; 16 pooled draws 0.002-0.004, at 16x the cost (docs/METRICS.md).

    ``metric="one_nn"`` (default): the leave-one-out 1-NN two-sample test in pixel
    space, scored as ``0.5 + max(|acc_fake - 0.5|, |acc_real - 0.5|)``: 0.5 when samples and
    reference are indistinguishable, 1.0 when separable. Taking the worse of the two per-set
    accuracies (not the pooled one) matters: uniform noise on Fashion-MNIST gets a pooled
    accuracy of ~0.51 (every noise image's nearest neighbour is a real one, every real's a
    real one) but a real-set accuracy of 1.0; folding around 0.5 keeps memorisation (both
    accuracies ~0) from scoring best. ``metric="kid"``: KID on ``features`` (e.g.
    ``classifier.features``) or pixels, averaged over the draws.
    """
    ref = as_images(reference) if reference.dtype != torch.uint8 else to_float(reference)
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    n = n or len(ref) // draws
    if n < 1 or n * draws > len(ref):
        raise ValueError(f"quick_score needs {draws} x {n} reference images, got {len(ref)}")
    if metric not in ("one_nn", "kid"):
        raise ValueError(f"unknown quick metric {metric!r}; use one_nn or kid")
    sides, kids = np.zeros(2), []
    for i in range(draws):
        fake, real = draw(sample_fn, n, seed + i), ref[i * n:(i + 1) * n]
        if features is not None:
            fake, real = features(fake), features(real)
        if metric == "one_nn":
            r = M.one_nn_accuracy(fake, real)
            sides += (r["one_nn_acc_fake"], r["one_nn_acc_real"])
        else:
            kids.append(M.kid(fake, real, num_subsets=10, subset_size=n, seed=seed + i)["kid"])
    if metric == "kid":
        return float(np.mean(kids))
    acc_fake, acc_real = sides / draws
    return float(0.5 + max(abs(acc_fake - 0.5), abs(acc_real - 0.5)))


def coverage_warning(metrics: dict[str, Any], num_classes: int | None = None) -> str | None:
    """A one-line warning when a metrics row shows signs of mode collapse, else None.

    Looks at the classifier histogram (classes covered, rarest class share), recall and the
    1-NN accuracy on fakes (fakes that are each other's nearest neighbours)."""
    problems = []
    k = num_classes
    if "coverage_classes" in metrics and k:
        if metrics["coverage_classes"] < k:
            problems.append(f"only {metrics['coverage_classes']} of {k} classes generated")
        elif metrics.get("coverage_min_share", 1.0) < 0.25 / k:
            problems.append(f"rarest class at {metrics['coverage_min_share']:.1%} of samples "
                            f"(uniform: {1 / k:.1%})")
    if metrics.get("recall", 1.0) < 0.1:
        problems.append(f"recall {metrics['recall']:.3f}: samples cover little of the data manifold")
    if metrics.get("one_nn_acc_fake", 0.0) > 0.97 and metrics.get("one_nn_acc_real", 1.0) < 0.9:
        problems.append("samples are each other's nearest neighbours (near-duplicates)")
    if metrics.get("label_acc_min", 1.0) < 0.5:
        problems.append(f"label {metrics.get('label_acc_worst', '?')} generated correctly only "
                        f"{metrics['label_acc_min']:.0%} of the time")
    return "possible mode collapse: " + "; ".join(problems) if problems else None


# -- trivial generators and real-data rows --------------------------------------------------------
def data_sampler(images: torch.Tensor) -> SampleFn:
    """Real images as a generator: a fresh random order (without replacement) per draw."""
    state: dict[str, Any] = {}

    def sample(n: int, g: torch.Generator) -> torch.Tensor:
        if state.get("g") is not g or state["pos"] + n > len(images):
            state.update(g=g, perm=torch.randperm(len(images), generator=g), pos=0)
        idx = state["perm"][state["pos"] : state["pos"] + n]
        state["pos"] += n
        return to_float(images[idx])

    return sample


def data_label_sampler(data: ImageData) -> LabelFn:
    """Real images of the requested labels (random, with replacement)."""
    by_class = [torch.nonzero(data.labels == c).view(-1) for c in range(max(data.num_classes, 1))]

    def sample(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        idx = torch.stack([by_class[int(c)][torch.randint(len(by_class[int(c)]), (), generator=g)]
                           for c in labels])
        return to_float(data.images[idx])

    return sample


def noise_sampler(channels: int, size: int) -> SampleFn:
    return lambda n, g: torch.rand(n, channels, size, size, generator=g) * 2 - 1


def repeat_sampler(image: torch.Tensor) -> SampleFn:
    x = to_float(image[None]) if image.dtype == torch.uint8 else image[None]
    return lambda n, g: x.expand(n, -1, -1, -1).clone()


BASELINE_ROWS = ("real: train vs test", "uniform noise", "one image repeated")


def evaluate_real_baselines(
    dataset: str, data_root: str | Path | None, n: int = 10000, seed: int = 0, image_size: int = 32,
    **kwargs: Any,
) -> dict[str, dict[str, float]]:
    """The scale rows for a generation table: real train images vs the test split (the best
    a generator can be expected to do at this sample count), uniform noise and one train
    image repeated (the worst, and a perfectly collapsed generator). Labels are handed to
    every row so that ``label_acc`` has a scale too."""
    name = canonical_name(dataset)
    ref = load_reference(name, data_root, image_size)
    train = ref.train
    noise = noise_sampler(train.channels, image_size)
    rows = {
        BASELINE_ROWS[0]: (data_sampler(train.images), data_label_sampler(train)),
        BASELINE_ROWS[1]: (noise, lambda y, g: noise(len(y), g)),
        BASELINE_ROWS[2]: (repeat_sampler(train.images[0]), lambda y, g: repeat_sampler(train.images[0])(len(y), g)),
    }
    return {row: evaluate_generator(s, name, data_root, n, seed, label_fn=lf, **kwargs)
            for row, (s, lf) in rows.items()}


# -- reconstruction (autoencoders) ----------------------------------------------------------------
def evaluate_reconstruction(
    encode_fn: ImageFn,
    decode_fn: ImageFn,
    dataset: str,
    data_root: str | Path | None,
    image_size: int = 32,
    n: int | None = None,
    seed: int = 0,
    n_code: int = 1000,
    classifier: TrainedClassifier | None = None,
    cache: str | Path | None = None,
) -> dict[str, float]:
    """Reconstruction of the test split and the match of its codes to the N(0, I) prior.

    ``recon_mse``/``recon_l1`` per pixel on [0, 1] images; ``recon_class_acc``: classifier
    accuracy on the reconstructions against the true labels (do they keep the class?);
    ``code_mmd2``: Gaussian-kernel MMD^2 between ``n_code`` test codes and as many N(0, I)
    draws."""
    name = canonical_name(dataset)
    ref = load_reference(name, data_root, image_size)
    test = ref.test if n is None else ref.test.subset(min(n, len(ref.test)))
    x = to_float(test.images)
    codes = _apply(encode_fn, x, 250).flatten(1)
    recon = _apply(decode_fn, codes, 250).clamp(-1, 1)
    clf = classifier or get_classifier(name, data_root, cache=cache)
    out: dict[str, Any] = {"n_test": len(test), "classifier_test_acc": clf.test_accuracy}
    out |= M.reconstruction_error(recon, x)
    out["recon_class_acc"] = float((clf.predict(recon) == test.labels).double().mean())
    k = min(n_code, len(codes))
    g = torch.Generator().manual_seed(seed)
    prior = torch.randn(k, codes.shape[1], generator=g)
    out |= M.code_mmd(codes[_subset(len(codes), k, seed)], prior)
    out["n_code"] = k
    return out


def pca_autoencoder(images: torch.Tensor, latent_dim: int) -> tuple[ImageFn, ImageFn]:
    """A linear autoencoder fitted by PCA with whitened codes (unit variance per component):
    the baseline any learned autoencoder with ``latent_dim`` codes should beat."""
    x = to_float(images).flatten(1).double()
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    v = vt[:latent_dim].T  # [D, d]
    scale = (s[:latent_dim] / math.sqrt(len(x) - 1)).clamp_min(1e-8)
    shape = images.shape[1:]

    def encode(img: torch.Tensor) -> torch.Tensor:
        return (((img.flatten(1).double() - mean) @ v) / scale).float()

    def decode(z: torch.Tensor) -> torch.Tensor:
        return ((z.double() * scale) @ v.T + mean).float().view(-1, *shape)

    return encode, decode


def evaluate_reconstruction_baselines(
    dataset: str, data_root: str | Path | None, latent_dim: int = 8, image_size: int = 32, **kwargs: Any
) -> dict[str, dict[str, float]]:
    """Scale rows for an autoencoder table: PCA with the same code size (whitened codes),
    the mean train image for every input (codes all 0: a collapsed posterior), and the
    identity (perfect reconstruction, codes ignoring the input: N(0, I) noise)."""
    name = canonical_name(dataset)
    ref = load_reference(name, data_root, image_size)
    sub = ref.train.images[_subset(len(ref.train), 10000, 0)]
    mean = to_float(sub).mean(0, keepdim=True)
    enc, dec = pca_autoencoder(sub, latent_dim)
    g = torch.Generator().manual_seed(123)
    seen: list[torch.Tensor] = []  # encode sees every batch before decode: hand them back in order

    def noise_code(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return torch.randn(len(x), latent_dim, generator=g)

    rows = {
        f"PCA ({latent_dim} whitened components)": (enc, dec),
        "mean train image": (lambda x: torch.zeros(len(x), latent_dim), lambda z: mean.expand(len(z), -1, -1, -1)),
        "identity (codes = noise)": (noise_code, lambda z: seen.pop(0)),
    }
    return {row: evaluate_reconstruction(e, d, name, data_root, image_size, **kwargs) for row, (e, d) in rows.items()}


# -- translation ----------------------------------------------------------------------------------
def _unpaired(data_root: str | Path, split: str, size: int) -> UnpairedData:
    key = ("unpaired", str(data_root), split, size)
    if key not in _REFS:
        data = load_dataset("unpaired", data_root, split, image_size=size, load_size=size)
        assert isinstance(data, UnpairedData)
        _REFS[key] = data
    return _REFS[key]


def _domain_rows(clf: TrainedClassifier, data_root: str | Path, to_b: torch.Tensor, to_a: torch.Tensor,
                 seed: int) -> dict[str, float]:
    """Domain shares, KID and FID of translated images against the other domain's train images."""
    train = _unpaired(data_root, "train", clf.image_size)
    ref_a_key, ref_b_key = ("feat_a", str(data_root), clf.path), ("feat_b", str(data_root), clf.path)
    if ref_b_key not in _REFS:
        _REFS[ref_a_key] = clf.features(to_float(train.a.images))
        _REFS[ref_b_key] = clf.features(to_float(train.b.images))
    fb, pb = clf.features_probs(to_b)
    fa, pa = clf.features_probs(to_a)
    a, b = clf.classes[0], clf.classes[1]
    return {
        f"a2b_is_{b}": float((pb.argmax(1) == 1).double().mean()),
        f"b2a_is_{a}": float((pa.argmax(1) == 0).double().mean()),
        "kid_a2b": M.kid(fb, _REFS[ref_b_key], num_subsets=50, seed=seed)["kid"],
        "kid_b2a": M.kid(fa, _REFS[ref_a_key], num_subsets=50, seed=seed)["kid"],
        "fid_a2b": M.fid(fb, _REFS[ref_b_key])["fid"],
        "fid_b2a": M.fid(fa, _REFS[ref_a_key])["fid"],
    }


def evaluate_translation(
    a2b: ImageFn,
    b2a: ImageFn,
    data_root: str | Path,
    image_size: int = 64,
    seed: int = 0,
    classifier: TrainedClassifier | None = None,
    cache: str | Path | None = None,
) -> dict[str, float]:
    """Unpaired translation on the test folders (``testA``/``testB``, centre crops).

    ``a2b_is_<B>``: share of translated test A images that the A-vs-B domain classifier calls
    B (and the reverse); ``kid_a2b``: KID between translated A and the real train B images in
    the classifier's features; ``cycle_l1_a``: mean |b2a(a2b(a)) - a| and ``identity_l1_b``:
    mean |a2b(b) - b|, per pixel on [0, 1] images."""
    test = _unpaired(data_root, "test", image_size)
    clf = classifier or get_classifier("unpaired", data_root, cache=cache)
    xa, xb = to_float(test.a.images), to_float(test.b.images)
    fa2b = _apply(a2b, xa, 16).clamp(-1, 1)
    fb2a = _apply(b2a, xb, 16).clamp(-1, 1)
    out: dict[str, Any] = {"n_test_a": len(xa), "n_test_b": len(xb), "classifier_test_acc": clf.test_accuracy}
    out |= _domain_rows(clf, data_root, fa2b, fb2a, seed)
    out["cycle_l1_a"] = float((_apply(b2a, fa2b, 16).clamp(-1, 1) - xa).abs().mean() / 2)
    out["cycle_l1_b"] = float((_apply(a2b, fb2a, 16).clamp(-1, 1) - xb).abs().mean() / 2)
    out["identity_l1_a"] = float((_apply(b2a, xa, 16).clamp(-1, 1) - xa).abs().mean() / 2)
    out["identity_l1_b"] = float((_apply(a2b, xb, 16).clamp(-1, 1) - xb).abs().mean() / 2)
    return out


def evaluate_translation_at(
    a2b: ImageFn,
    b2a: ImageFn,
    data_root: str | Path,
    size: int = TRANSLATE_SIZE,
    seed: int = 0,
    classifier: TrainedClassifier | None = None,
    cache: str | Path | None = None,
) -> dict[str, float]:
    """What ``/translate`` returns for the test photos at ``size`` px (the graphs are fully
    convolutional): the domain shares and the KID and FID against the other domain's train photos
    (the classifier's features; it resizes to its own size), and the sharpness ratio of output
    over input at ``size`` (``metrics.sharpness_ratio``). Keys end in ``_<size>``."""
    test = _unpaired(data_root, "test", size)
    clf = classifier or get_classifier("unpaired", data_root, cache=cache)
    xa, xb = to_float(test.a.images), to_float(test.b.images)
    fa2b = _apply(a2b, xa, 4).clamp(-1, 1)
    fb2a = _apply(b2a, xb, 4).clamp(-1, 1)
    rows = _domain_rows(clf, data_root, fa2b, fb2a, seed)
    sa, sb = M.sharpness_ratio(fa2b, xa), M.sharpness_ratio(fb2a, xb)
    rows |= {"sharpness_a2b": sa["sharpness"], "sharpness_b2a": sb["sharpness"],
             "sharpness_q25_a2b": sa["sharpness_q25"], "sharpness_q25_b2a": sb["sharpness_q25"]}
    out: dict[str, float] = {f"n_test_a_{size}": len(xa), f"n_test_b_{size}": len(xb)}
    out |= {f"{k}_{size}": v for k, v in rows.items()}
    return out


def evaluate_translation_baselines(
    data_root: str | Path, image_size: int = 64, seed: int = 0, **kwargs: Any
) -> dict[str, dict[str, float]]:
    """Scale rows: the identity "translation" (nothing changes: cycle and identity L1 are 0,
    the domain shares are the classifier's error rates) and real test images of the target
    domain in place of translations (domain shares = classifier accuracy, KID = the real
    test-vs-train gap; no cycle/identity numbers), both also at ``TRANSLATE_SIZE`` (``*_256``
    keys); and the sharpness ratio of the input resized through 64, 128 and 192 px and back."""
    rows = {"identity (no change)": evaluate_translation(lambda x: x, lambda x: x, data_root, image_size, seed,
                                                         **kwargs)}
    test = _unpaired(data_root, "test", image_size)
    clf = kwargs.get("classifier") or get_classifier("unpaired", data_root, cache=kwargs.get("cache"))
    real = {"n_test_a": len(test.a), "n_test_b": len(test.b), "classifier_test_acc": clf.test_accuracy}
    real |= _domain_rows(clf, data_root, to_float(test.b.images), to_float(test.a.images), seed)
    rows["real: other domain's test images"] = real
    # at /translate's working size: the identity and the real rows again (keys ``*_256``), and the
    # input resized down and back up (the scale of the sharpness ratio)
    big = TRANSLATE_SIZE
    rows["identity (no change)"] |= evaluate_translation_at(lambda x: x, lambda x: x, data_root, big, seed, **kwargs)
    test_big = _unpaired(data_root, "test", big)
    real_big = _domain_rows(clf, data_root, to_float(test_big.b.images), to_float(test_big.a.images), seed)
    real |= {f"{k}_{big}": v for k, v in real_big.items()}
    xa, xb = to_float(test_big.a.images), to_float(test_big.b.images)
    for through in (64, 128, 192):
        row: dict[str, float] = {}
        for key, x in (("a2b", xa), ("b2a", xb)):
            r = M.sharpness_ratio(resize(resize(x, through), big), x)
            row |= {f"sharpness_{key}_{big}": r["sharpness"], f"sharpness_q25_{key}_{big}": r["sharpness_q25"]}
        rows[f"input through {through} px and back"] = row
    return rows
