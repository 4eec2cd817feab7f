"""ganzoo's evaluation suite: every shipped model carries measured, comparable numbers.

Training loop / export (see docs/METRICS.md for the protocol of every number)::

    from training.evaluation import evaluate_generator, quick_score
    row = evaluate_generator(sample_fn, "mnist", "../shared/data/mnist", n=10000, seed=0)
    score = quick_score(sample_fn, reference_images)   # keep-best, lower is better

CLI: ``python -m training.evaluation.cli {onnx,baselines,all,render-cards,classifier,metrics}``
(also ``python -m training eval ...``).
"""

from training.evaluation import metrics  # noqa: F401  (registers the metrics)
from training.evaluation.classifier import (
    TrainedClassifier,
    cache_dir,
    classifier_predict,
    get_classifier,
    get_domain_classifier,
    train_classifier,
)
from training.evaluation.registry import compute, is_valid_metric, list_metrics, metric_info, register_metric
from training.evaluation.suite import (
    coverage_warning,
    data_sampler,
    draw,
    evaluate_generator,
    evaluate_real_baselines,
    evaluate_reconstruction,
    evaluate_reconstruction_baselines,
    evaluate_translation,
    evaluate_translation_baselines,
    label_fidelity,
    noise_sampler,
    pca_autoencoder,
    quick_score,
    repeat_sampler,
)

__all__ = [
    "TrainedClassifier",
    "cache_dir",
    "classifier_predict",
    "compute",
    "coverage_warning",
    "data_sampler",
    "draw",
    "evaluate_generator",
    "evaluate_real_baselines",
    "evaluate_reconstruction",
    "evaluate_reconstruction_baselines",
    "evaluate_translation",
    "evaluate_translation_baselines",
    "get_classifier",
    "get_domain_classifier",
    "is_valid_metric",
    "label_fidelity",
    "list_metrics",
    "metric_info",
    "noise_sampler",
    "pca_autoencoder",
    "quick_score",
    "register_metric",
    "repeat_sampler",
    "train_classifier",
]
