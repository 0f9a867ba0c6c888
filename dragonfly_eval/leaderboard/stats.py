"""Paired comparisons of two runs on the same documents: a delta, its 95% interval, a p-value
and the smallest drop the document count can detect.

Means of 0/1 scores get the exact sign test (McNemar's test), other means of per-document scores
lmms-eval's paired t-test, and corpus-level metrics (CIDEr, F1, MME sums) a seeded paired
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
    `floor_p` is the smallest p-value the test can give on these documents (the sign test on k
    changed documents: 2 / 2**k; the bootstrap: 2 / (resamples + 1)).
    """

    delta: float
    low: float
    high: float
    p_value: float
    test: str
    n: int
    detectable: float | None
    floor_p: float = 0.0

    @property
    def finite(self) -> bool:
        """Whether every number of the interval is finite (float overflow makes inf and nan)."""
        numbers = [self.delta, self.low, self.high, self.p_value]
        numbers += [] if self.detectable is None else [self.detectable]
        return all(math.isfinite(x) for x in numbers)

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
        interval = paired_t_test(baseline, current)
    return replace(interval, detectable=detectable_change(baseline, current, alpha))


def paired_t_test(baseline: Sequence[float], current: Sequence[float]) -> Interval:
    """lmms-eval's paired_ttest (t interval of the mean difference, two-sided p), on arrays."""
    from scipy import stats as scipy_stats

    # its own copy, not lmms_eval.api.metrics: importing that loads torch and transformers
    # (~500 MB, seconds), more than the gate's whole budget on 200,000 documents
    diff = np.asarray(current, dtype=float) - np.asarray(baseline, dtype=float)
    n = len(diff)
    mean = float(diff.mean())
    se = float(diff.std(ddof=1)) / math.sqrt(n)
    if se == 0:
        p_value = 0.0 if mean != 0 else 1.0
    else:
        p_value = float(2 * scipy_stats.t.sf(abs(mean / se), n - 1))
    half = float(scipy_stats.t.ppf(0.975, n - 1)) * se
    return Interval(mean, mean - half, mean + half, p_value, T_TEST, n, None)


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
        return Interval(0.0, 0.0, 0.0, 1.0, SIGN_TEST, n, None, 1.0)
    test = scipy_stats.binomtest(gained, changed, 0.5)
    bounds = test.proportion_ci(confidence_level=LEVEL, method="exact")
    # delta = changed * (2 * share_of_gains - 1) / n
    low = changed * (2 * bounds.low - 1) / n
    high = changed * (2 * bounds.high - 1) / n
    floor_p = min(1.0, 2.0 * 0.5**changed)  # every changed document moved the same way
    return Interval(delta, low, high, float(test.pvalue), SIGN_TEST, n, None, floor_p)


def detectable_change(
    baseline: Sequence[float], current: Sequence[float], alpha: float = DEFAULT_ALPHA
) -> float | None:
    """The smallest change of the mean a paired test on these documents detects at 80% power:
    lmms-eval's power_analysis formula, (z_alpha + z_power) * sd(differences) / sqrt(n)."""
    diff = np.asarray(current, dtype=float) - np.asarray(baseline, dtype=float)
    spread = float(diff.std(ddof=1))
    if not spread >= 1e-12 or not math.isfinite(spread):
        return None  # the documents moved together (or not at all): no spread to size from
    return power_z(alpha) * spread / math.sqrt(len(diff))


def power_z(alpha: float) -> float:
    """z_alpha/2 + z_power of a two-sided test at `alpha` and 80% power."""
    from scipy import stats as scipy_stats

    # isf, not lmms-eval's ppf(1 - alpha / 2): that rounds to ppf(1) = inf below alpha ~1e-16
    return float(scipy_stats.norm.isf(alpha / 2) + scipy_stats.norm.ppf(POWER))


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
    task into the score. Seeded: the same inputs give the same interval. When both sides hold
    the same values, every resample's change is 0 and none is drawn.
    """
    _check_bootstrap(baseline, current, iterations)
    rng = np.random.default_rng(seed)
    delta = statistic([list(t) for t in current]) - statistic([list(t) for t in baseline])
    deltas = np.zeros(iterations)
    same = all(list(b) == list(c) for b, c in zip(baseline, current, strict=True))
    for i in range(0 if same else iterations):
        picks = [rng.integers(0, len(t), len(t)) for t in baseline]
        base = [[t[j] for j in pick] for t, pick in zip(baseline, picks, strict=True)]
        cur = [[t[j] for j in pick] for t, pick in zip(current, picks, strict=True)]
        deltas[i] = statistic(cur) - statistic(base)
    return _bootstrap_interval(delta, deltas, sum(len(t) for t in baseline), alpha)


def paired_bootstrap_sums(
    baseline: Sequence[np.ndarray],
    current: Sequence[np.ndarray],
    scores: Sequence[Callable[[np.ndarray, int], np.ndarray]],
    delta: float,
    alpha: float = DEFAULT_ALPHA,
    iterations: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """The paired bootstrap of `paired_bootstrap` for scores that are functions of per-document
    feature sums (a mean, a confusion table): `baseline[t]` is task t's [n_t, F_t] features,
    `scores[t]` maps sums [R, F_t] and n_t to R scores; the headline is the mean over tasks.
    Each resample is drawn as how often it picks each document, so no score is recomputed on a
    list. `delta` is the change the tasks' own functions give on all documents."""
    _check_bootstrap(baseline, current, iterations)
    rng = np.random.default_rng(seed)
    deltas = np.zeros(iterations)
    for base, cur, score in zip(baseline, current, scores, strict=True):
        n = len(base)
        if np.array_equal(base, cur):
            continue  # this task adds 0 to every resample's change
        pair = np.hstack([base, cur])  # [n, 2F]
        chunk = max(1, min(iterations, 2**20 // n))  # ~8 MiB of draws at a time
        for start in range(0, iterations, chunk):
            rows = min(chunk, iterations - start)
            picks = rng.integers(0, n, (rows, n)) + n * np.arange(rows)[:, None]
            counts = np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n)  # [R, n]
            sums = counts @ pair  # [R, 2F]
            width = base.shape[1]
            change = score(sums[:, width:], n) - score(sums[:, :width], n)
            deltas[start : start + rows] += change / len(baseline)
    return _bootstrap_interval(delta, deltas, sum(len(t) for t in baseline), alpha)


def _check_bootstrap(
    baseline: Sequence[Sequence[object]], current: Sequence[Sequence[object]], iterations: int
) -> None:
    if iterations < 10:
        raise ValueError("the bootstrap needs at least 10 iterations")
    if any(len(b) != len(c) or not len(b) for b, c in zip(baseline, current, strict=True)):
        raise ValueError("each task needs the same, non-empty documents on both sides")


def _bootstrap_interval(delta: float, deltas: np.ndarray, n: int, alpha: float) -> Interval:
    iterations = len(deltas)
    low, high = np.quantile(deltas, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    # two-sided: how often the resampled change reaches the other side of zero
    tail = min(np.count_nonzero(deltas <= 0), np.count_nonzero(deltas >= 0))
    p_value = min(1.0, 2 * (int(tail) + 1) / (iterations + 1))
    spread = float(deltas.std(ddof=1))
    # power_analysis's minimum detectable effect, with the bootstrap's standard error
    detectable = power_z(alpha) * spread if spread > 0 and math.isfinite(spread) else None
    floor_p = min(1.0, 2 / (iterations + 1))
    return Interval(
        float(delta), float(low), float(high), p_value, BOOTSTRAP, n, detectable, floor_p
    )
