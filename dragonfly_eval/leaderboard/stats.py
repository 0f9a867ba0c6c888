"""Paired comparisons of two runs on the same documents: a delta, its 95% interval, a p-value
and the smallest drop the document count can detect.

Means of 0/1 scores get the exact sign test (McNemar's test), other means of per-document scores
get lmms-eval's own paired t-test, and corpus-level metrics (CIDEr, F1, MME sums) a seeded paired
bootstrap through the task's own aggregation function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

LEVEL = 0.95
POWER = 0.80
DEFAULT_ALPHA = 0.05
DEFAULT_BOOTSTRAP = 1000
DEFAULT_SEED = 1234

SIGN_TEST = "sign test"
T_TEST = "paired t-test"
BOOTSTRAP = "paired bootstrap"


@dataclass(frozen=True)
class Interval:
    """current - baseline on the paired documents, with its 95% interval and p-value.

    `detectable` is the smallest change this many documents detect at 80% power and the
    gate's alpha (None when the scores do not vary, so there is nothing to size it from).
    """

    delta: float
    low: float
    high: float
    p_value: float
    test: str
    n: int
    detectable: float | None

    def scaled(self, factor: float) -> Interval:
        """The same interval in other units (e.g. x100 for leaderboard points)."""
        detectable = None if self.detectable is None else self.detectable * factor
        return replace(
            self,
            delta=self.delta * factor,
            low=self.low * factor,
            high=self.high * factor,
            detectable=detectable,
        )


def is_binary(values: Sequence[float]) -> bool:
    """Whether every score is 0 or 1 (accuracy-like metrics)."""
    return all(v in (0, 1) for v in values)


def paired_means(
    baseline: Sequence[float], current: Sequence[float], alpha: float = DEFAULT_ALPHA
) -> Interval:
    """Compare two means of per-document scores, document by document (same order).

    0/1 scores get the exact sign test: the t-test's normal approximation is too optimistic
    when only a few documents changed (4 losses of 400: t-test p=0.045, sign test p=0.125).
    """
    if len(baseline) != len(current) or len(baseline) < 2:
        raise ValueError("a paired test needs two equally long lists of at least 2 scores")
    if is_binary(baseline) and is_binary(current):
        interval = sign_test(baseline, current)
    else:
        from lmms_eval.api.metrics import paired_ttest  # lazily: it imports scipy and more

        result = paired_ttest(list(current), list(baseline))
        interval = Interval(
            result["mean_diff"],
            result["ci_lower"],
            result["ci_upper"],
            result["p_value"],
            T_TEST,
            len(baseline),
            None,
        )
    return replace(interval, detectable=detectable_change(baseline, current, alpha))


def sign_test(baseline: Sequence[float], current: Sequence[float]) -> Interval:
    """Exact sign test on the documents whose 0/1 score changed; the interval is the
    Clopper-Pearson bound on the share of gains among them, in units of the mean."""
    from scipy import stats as scipy_stats

    n = len(baseline)
    gained = sum(1 for b, c in zip(baseline, current, strict=True) if c > b)
    lost = sum(1 for b, c in zip(baseline, current, strict=True) if c < b)
    changed = gained + lost
    delta = (gained - lost) / n
    if changed == 0:
        return Interval(0.0, 0.0, 0.0, 1.0, SIGN_TEST, n, None)
    test = scipy_stats.binomtest(gained, changed, 0.5)
    bounds = test.proportion_ci(confidence_level=LEVEL, method="exact")
    # delta = changed * (2 * share_of_gains - 1) / n
    low = changed * (2 * bounds.low - 1) / n
    high = changed * (2 * bounds.high - 1) / n
    return Interval(delta, low, high, float(test.pvalue), SIGN_TEST, n, None)


def detectable_change(
    baseline: Sequence[float], current: Sequence[float], alpha: float = DEFAULT_ALPHA
) -> float | None:
    """The smallest change of the mean a paired test on these documents detects at 80% power
    (lmms-eval's power_analysis, fed the observed spreads and correlation)."""
    from lmms_eval.api.metrics import power_analysis

    base, cur = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    std_a, std_b = float(base.std(ddof=1)), float(cur.std(ddof=1))
    if float((cur - base).std(ddof=1)) < 1e-12:
        return None  # the documents moved together (or not at all): no spread to size from
    correlation = 0.0
    if std_a > 0 and std_b > 0:
        correlation = float(np.clip(np.corrcoef(base, cur)[0, 1], -1.0, 1.0))
    try:
        result = power_analysis(
            effect_size=1.0,
            std_a=std_a,
            std_b=std_b,
            alpha=alpha,
            power=POWER,
            correlation=correlation,
            current_n=len(base),
        )
    except (ZeroDivisionError, ValueError):  # rounding left no variance of the difference
        return None
    return float(result["min_detectable_effect"])


def paired_bootstrap(
    baseline: Sequence[Sequence[object]],
    current: Sequence[Sequence[object]],
    statistic: Callable[[list[list[object]]], float],
    alpha: float = DEFAULT_ALPHA,
    iterations: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Compare a corpus-level statistic of two runs by resampling documents in pairs.

    `baseline[t]` and `current[t]` are the per-document values of task t (same documents, same
    order); each task is resampled on its own, and `statistic` turns one list of values per
    task into the score. Seeded: the same inputs give the same interval.
    """
    if iterations < 10:
        raise ValueError("the bootstrap needs at least 10 iterations")
    if any(len(b) != len(c) or not b for b, c in zip(baseline, current, strict=True)):
        raise ValueError("each task needs the same, non-empty documents on both sides")
    from scipy import stats as scipy_stats

    rng = np.random.default_rng(seed)
    delta = statistic([list(t) for t in current]) - statistic([list(t) for t in baseline])
    deltas = np.empty(iterations)
    for i in range(iterations):
        picks = [rng.integers(0, len(t), len(t)) for t in baseline]
        base = [[t[j] for j in pick] for t, pick in zip(baseline, picks, strict=True)]
        cur = [[t[j] for j in pick] for t, pick in zip(current, picks, strict=True)]
        deltas[i] = statistic(cur) - statistic(base)
    low, high = np.quantile(deltas, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    # two-sided: how often the resampled change reaches the other side of zero
    tail = min(np.count_nonzero(deltas <= 0), np.count_nonzero(deltas >= 0))
    p_value = min(1.0, 2 * (int(tail) + 1) / (iterations + 1))
    spread = float(deltas.std(ddof=1))
    # power_analysis's minimum detectable effect, with the bootstrap's standard error
    z = float(scipy_stats.norm.ppf(1 - alpha / 2) + scipy_stats.norm.ppf(POWER))
    detectable = z * spread if spread > 0 and math.isfinite(spread) else None
    n = sum(len(t) for t in baseline)
    return Interval(float(delta), float(low), float(high), p_value, BOOTSTRAP, n, detectable)
