"""The suite on real MNIST: the classifier, the generation/reconstruction rows, the ONNX CLI.

One MNIST classifier is trained per session with a reduced budget (300 steps, ~20 s on one
core) into a temporary cache, and installed there under the default cache key too, so the
CLI finds it instead of training the full one.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from training.evaluation import classifier as C
from training.evaluation import suite

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST = DATA / "mnist"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").exists(), reason="MNIST not available"),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("classifiers")


@pytest.fixture(scope="module")
def mnist_clf(cache: Path) -> C.TrainedClassifier:
    torch.set_num_threads(1)
    t0 = time.monotonic()
    clf = C.get_classifier("mnist", MNIST, steps=300, cache=cache)
    assert time.monotonic() - t0 < 90
    # the CLI asks for the default budget: give it this one under the default key
    shutil.copy(clf.path, cache / f"{C.cache_key('mnist', 32, None, 0)}.pt")
    return clf


def test_mnist_classifier_accuracy_and_cache(mnist_clf: C.TrainedClassifier, cache: Path) -> None:
    assert mnist_clf.test_accuracy > 0.97
    assert mnist_clf.path is not None and mnist_clf.path.parent == cache
    assert mnist_clf.path.name == "mnist-32px-v1-s300-seed0.pt"
    again = C.load_classifier(mnist_clf.path)
    assert again.test_accuracy == mnist_clf.test_accuracy and again.classes == [str(i) for i in range(10)]
    x = torch.rand(7, 1, 28, 28) * 2 - 1  # other sizes are resized to the classifier's
    f, p = again.features_probs(x)
    assert f.shape == (7, C.FEATURE_DIM) and p.shape == (7, 10)
    assert torch.allclose(p.sum(1), torch.ones(7), atol=1e-5)


def test_generation_rows_rank_real_above_trivial(mnist_clf: C.TrainedClassifier) -> None:
    ref = suite.load_reference("mnist", MNIST, 32)
    kw = dict(n=1000, n_pixel=500, n_pr=1000, kid_subsets=10, n_label_per_class=20, classifier=mnist_clf,
              n_parzen_valid=200)
    real = suite.evaluate_generator(suite.data_sampler(ref.train.images), "mnist", MNIST,
                                    label_fn=suite.data_label_sampler(ref.train), **kw)
    one = suite.evaluate_generator(suite.repeat_sampler(ref.train.images[0]), "mnist", MNIST, **kw)
    noise = suite.evaluate_generator(suite.noise_sampler(1, 32), "mnist", MNIST, **kw)
    assert real["n_samples"] == 1000 and real["n_test"] == 5000 and real["n_pixel"] == 500
    assert real["fid"] < 0.1 * min(one["fid"], noise["fid"])
    assert real["coverage_classes"] == 10 and one["coverage_classes"] == 1
    assert 0.4 < real["one_nn_acc"] < 0.6 and one["one_nn_acc"] > 0.99 and noise["one_nn_acc"] == 1.0
    assert real["recall"] > 0.5 and one["recall"] < 0.01
    assert real["label_acc"] > 0.95
    assert real["parzen_ll"] > one["parzen_ll"] and real["parzen_ll"] > noise["parzen_ll"]
    assert real["pixel_mmd2"] < 0.01 < noise["pixel_mmd2"]
    # pixel metrics are the mean of 5 draws (fresh samples and test subsets): real data varies
    # between draws, a constant generator does not
    assert real["n_pixel_repeats"] == 5 and 0 < real["one_nn_acc_std"] < 0.05 and 0 < real["pixel_mmd_std"]
    assert one["one_nn_acc_std"] < 1e-3
    assert suite.coverage_warning(real, 10) is None
    warn = suite.coverage_warning(one, 10)
    assert warn is not None and "only 1 of 10 classes" in warn


def test_quick_score_is_cheap_and_ranks(mnist_clf: C.TrainedClassifier) -> None:
    ref = suite.load_reference("mnist", MNIST, 32)
    reference = ref.train.get_batch(torch.arange(500))["image"]
    t0 = time.monotonic()
    real = suite.quick_score(suite.data_sampler(ref.test.images), reference)
    assert time.monotonic() - t0 < 10
    noise = suite.quick_score(suite.noise_sampler(1, 32), reference)
    assert real < 0.65 and noise == 1.0
    # memorisation (the reference itself) is folded to the bad side, not rewarded
    assert suite.quick_score(lambda n, g: reference[:n], reference) == 1.0
    kid_real = suite.quick_score(suite.data_sampler(ref.test.images), reference, metric="kid",
                                 features=mnist_clf.features)
    kid_noise = suite.quick_score(suite.noise_sampler(1, 32), reference, metric="kid", features=mnist_clf.features)
    assert kid_real < kid_noise


def shipped_dcgan() -> suite.SampleFn:
    """The shipped MNIST dcgan (serving/pretrained, 2.7 MB) on ONNX Runtime: a small real generator."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    path = Path(__file__).resolve().parents[1] / "serving" / "pretrained" / "dcgan" / "generator.onnx"
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    z_shape = sess.get_inputs()[0].shape[1:]

    def sample(n: int, g: torch.Generator) -> torch.Tensor:
        return torch.from_numpy(sess.run(None, {"z": torch.randn(n, *z_shape, generator=g).numpy()})[0])

    return sample


def test_pooled_draws_are_deterministic_and_spread_less_over_seeds_than_one_draw() -> None:
    ref = suite.load_reference("mnist", MNIST, 32)
    reference = ref.train.get_batch(torch.arange(8 * 200))["image"]
    sample = shipped_dcgan()
    assert suite.quick_score(sample, reference, n=200, draws=8, seed=3) == suite.quick_score(
        sample, reference, n=200, draws=8, seed=3)
    one = [suite.quick_score(sample, reference[:200], seed=1000 * s) for s in range(8)]
    pooled = [suite.quick_score(sample, reference, n=200, draws=8, seed=1000 * s) for s in range(8)]
    assert len(set(one)) > 1 and len(set(pooled)) > 1  # the seeds do change the draws
    # 8 draws: std / sqrt(8) in theory; measured with 8 seeds each
    assert float(torch.tensor(pooled).std()) < 0.6 * float(torch.tensor(one).std())
    assert abs(sum(pooled) / 8 - sum(one) / 8) < 0.05  # the same statistic, on about the same scale
    with pytest.raises(ValueError, match="8 x 300 reference images"):
        suite.quick_score(sample, reference, n=300, draws=8)


def test_reconstruction_rows(mnist_clf: C.TrainedClassifier) -> None:
    rows = suite.evaluate_reconstruction_baselines("mnist", MNIST, latent_dim=8, n=1000, classifier=mnist_clf)
    pca, mean, ident = rows.values()
    assert ident["recon_mse"] == 0.0 and ident["recon_class_acc"] > 0.97
    assert pca["recon_mse"] < mean["recon_mse"]
    assert abs(ident["code_mmd2"]) < 0.01 < mean["code_mmd2"]
    assert pca["n_test"] == 1000 and pca["n_code"] == 1000


def test_onnx_cli_writes_card_and_renders(mnist_clf: C.TrainedClassifier, cache: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from conftest import write_artifact

    from training.evaluation import cli

    monkeypatch.setenv("GANZOO_CACHE", str(cache))
    pretrained = tmp_path / "pretrained"
    art = write_artifact(pretrained / "tiny", "dcgan", name="tiny")  # 8x8 greyscale, latent 8
    assert cli.main(["onnx", str(art), "--dataset", "mnist", "--data-root", str(MNIST), "--n", "600",
                     "--write", "--json", str(tmp_path / "rows.json")]) == 0
    out = capsys.readouterr().out
    assert "| fid |" in out and "| one_nn_acc |" in out
    card = json.loads((art / "card.json").read_text())
    m = card["metrics"]
    assert m["n_samples"] == 600 and m["eval_dataset"] == "mnist" and m["fid"] > 0
    assert m["classifier_test_acc"] == pytest.approx(mnist_clf.test_accuracy, abs=1e-6)
    assert "| fid |" in (art / "card.md").read_text()
    assert json.loads((tmp_path / "rows.json").read_text())["tiny"]["n_pixel"] == 600
    md = tmp_path / "MODEL_CARDS.md"
    assert cli.main(["render-cards", "--pretrained", str(pretrained), "--out", str(md)]) == 0
    text = md.read_text()
    assert "## tiny" in text and "| fid |" in text
    assert cli.main(["render-cards", "--pretrained", str(tmp_path / "none"), "--out", str(md)]) == 0
    assert "No pretrained models" in md.read_text()


def test_onnx_artifact_feeds_labels_and_translation(tmp_path: Path) -> None:
    from conftest import write_artifact

    from training.evaluation.onnx_models import OnnxArtifact

    cg = OnnxArtifact(write_artifact(tmp_path / "cgan", "cgan"))
    assert cg.conditional
    g = torch.Generator().manual_seed(0)
    a = cg.sample_labels(torch.tensor([0, 1, 2]), g)
    assert a.shape == (3, 3, 8, 8) and a.abs().max() <= 1
    sg = OnnxArtifact(write_artifact(tmp_path / "stylegan", "stylegan"))
    assert sg.sample(5, g).shape == (5, 3, 8, 8)  # z, z2, noise, psi, crossover all filled
    cy = OnnxArtifact(write_artifact(tmp_path / "cyclegan", "cyclegan"))
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.allclose(cy.a2b(x), -x, atol=1e-6) and torch.allclose(cy.b2a(x), 0.5 * x, atol=1e-6)
