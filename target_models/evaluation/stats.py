"""Uncertainty for behaviour rates: is the organism's rate above its control's, or is it noise?

Replies to one prompt are not independent (the prompt decides much of the outcome), so the means and the
differences are bootstrapped over prompts: a draw resamples each behaviour's prompts with replacement and keeps
all replies of a drawn prompt together. Comparisons between models are paired: every model answered the same prompts,
and one draw picks the same prompts for both.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(shown: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (treats the n replies as independent)."""
    if n <= 0:
        raise ValueError(f"wilson: n must be positive, got {n}")
    if not 0 <= shown <= n:
        raise ValueError(f"wilson: shown={shown} is outside 0..{n}")
    p = shown / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # exact ends where the interval touches them (the formula leaves rounding dust there)
    return (0.0 if shown == 0 else mid - half), (1.0 if shown == n else mid + half)


def _draws(hits: dict[str, list[list[tuple[int, int]]]], draws: int, seed: int) -> np.ndarray:
    """Bootstrap draws of the mean over behaviours of each model's rate: shape [draws, models].

    hits[behaviour][prompt][model] = (replies showing the behaviour, replies)."""
    rng = np.random.default_rng(seed)
    total = None
    for b in sorted(hits):
        h = np.asarray(hits[b], dtype=float)  # [prompts, models, 2]: shown, replies
        idx = rng.integers(0, len(h), size=(draws, len(h)))
        picked = h[idx]  # [draws, prompts, models, 2]
        rate = picked[..., 0].sum(1) / picked[..., 1].sum(1)
        total = rate if total is None else total + rate
    assert total is not None
    return total / len(hits)


def split_means(per_model: list[dict[str, list[tuple[int, int]]]], draws: int = 2000,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Point estimates and bootstrap draws of the mean behaviour rate for several models on the same prompts.

    per_model[m][behaviour] = [(shown, replies) per prompt], prompts in the same order for every model."""
    if not per_model or not per_model[0]:
        raise ValueError("split_means: no behaviours to average")
    behaviours = sorted(per_model[0])
    for m, rows in enumerate(per_model):
        if sorted(rows) != behaviours:
            raise ValueError(f"split_means: model {m} has behaviours {sorted(rows)}, expected {behaviours}")
        for b in behaviours:
            if len(rows[b]) != len(per_model[0][b]):
                raise ValueError(f"split_means: model {m} has {len(rows[b])} prompts for {b!r}, "
                                 f"expected {len(per_model[0][b])}: the models must answer the same prompts")
    hits = {b: [[per_model[m][b][p] for m in range(len(per_model))] for p in range(len(per_model[0][b]))]
            for b in behaviours}
    point = np.array([np.mean([sum(s for s, _ in per_model[m][b]) / sum(n for _, n in per_model[m][b])
                               for b in behaviours]) for m in range(len(per_model))])
    return {"point": point, "draws": _draws(hits, draws, seed)}


def interval(draws: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return float(lo), float(hi)
