"""Learning-rate schedules the loop applies to every optimiser group of any variant.

``linear_decay_factor`` is CycleGAN's schedule (Zhu et al. 2017: 100 epochs at the base
rate, then 100 epochs decaying linearly to zero), expressed in steps: the loop multiplies
each group's base learning rate by the factor before every step.
"""

from __future__ import annotations


def linear_decay_factor(step: int, total_steps: int, decay_start: int | None) -> float:
    """1.0 for ``step < decay_start``, then linear down to 0.0 at ``step == total_steps``.

    ``step`` counts from 0 (the factor for the step about to be taken). ``decay_start`` of
    ``None``, or at or past ``total_steps``, means no decay: the factor is always 1.0. The
    result is clamped to [0, 1], so steps past ``total_steps`` (a resumed, extended run
    with the old total) never get a negative rate.
    """
    if decay_start is None or step < decay_start or decay_start >= total_steps:
        return 1.0
    return min(1.0, max(0.0, 1.0 - (step - decay_start) / (total_steps - decay_start)))
