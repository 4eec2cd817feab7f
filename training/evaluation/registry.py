"""Metrics registered by name, as in stylegan2-ada's ``metric_main``.

    @register_metric("fid", space="classifier features", better="lower", ideal=0.0)
    def fid(fake, real): ...          # returns a flat dict of floats, e.g. {"fid": 12.3}

    list_metrics()                    # ['fid', 'kid', ...]
    compute("fid", fake, real)        # {'fid': 12.3}

A metric returns a ``dict[str, float]`` so that results of several metrics merge into one
flat row (a table line, a card's ``metrics``) without renaming.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MetricFn = Callable[..., dict[str, float]]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    fn: MetricFn
    space: str  # what it is measured on: "classifier features", "pixels", "classifier labels", ...
    better: str  # "lower", "higher" or a target such as "0.5"
    ideal: float | None
    description: str


_METRICS: dict[str, MetricInfo] = {}


def register_metric(
    name: str, *, space: str = "", better: str = "lower", ideal: float | None = None
) -> Callable[[MetricFn], MetricFn]:
    """Decorator: make ``fn`` available as ``compute(name, ...)``. Names are unique."""

    def wrap(fn: MetricFn) -> MetricFn:
        if name in _METRICS and _METRICS[name].fn is not fn:
            raise ValueError(f"metric {name!r} is already registered")
        doc = " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())
        _METRICS[name] = MetricInfo(name, fn, space, better, ideal, doc)
        return fn

    return wrap


def list_metrics() -> list[str]:
    """Names of every registered metric, sorted."""
    return sorted(_METRICS)


def is_valid_metric(name: str) -> bool:
    return name in _METRICS


def metric_info(name: str) -> MetricInfo:
    try:
        return _METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(list_metrics())}") from None


def compute(name: str, *args: Any, **kwargs: Any) -> dict[str, float]:
    """Run the metric registered as ``name``; returns its flat dict of results."""
    return metric_info(name).fn(*args, **kwargs)
