"""What the gate decides: one comparison per benchmark and model pair, and the rules that set
its status (the tolerance alone on aggregates; significance, power and the detectable drop on
per-document comparisons)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.leaderboard.aggregations import Aggregation
from dragonfly_eval.leaderboard.stats import (
    DEFAULT_ALPHA,
    DEFAULT_BOOTSTRAP,
    DEFAULT_SEED,
    Interval,
)
from dragonfly_eval.leaderboard.suite import Benchmark

DEFAULT_TOLERANCE = 0.5
# Float noise must not turn a drop of exactly the tolerance into a failure.
_EPSILON = 1e-9
# the task's aggregation function for a corpus-level metric: (task, metric) -> function
Aggregations = Callable[[str, str], Aggregation | None]


class RegressError(DragonflyEvalError):
    """An input with no usable results, or nothing to compare: the gate cannot decide (exit 2)."""


@dataclass(frozen=True)
class Comparison:
    """One benchmark of one model pair. Status: ok, improved, possible drop, REGRESSION,
    MISSING or new. `interval` is the per-document comparison (leaderboard units), when there
    is one; `note` says why there is none; `rule` says which rule decided a per-document
    comparison other than its significance (e.g. the tolerance, when it is underpowered)."""

    benchmark: Benchmark
    baseline: float | None
    current: float | None
    status: str
    interval: Interval | None = None
    note: str | None = None
    rule: str | None = None

    @property
    def delta(self) -> float | None:
        """Current minus baseline, in leaderboard units (on the paired documents when compared
        per document); None when either side is missing."""
        if self.interval is not None:
            return self.interval.delta
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def failed(self) -> bool:
        """Whether this benchmark fails the gate: a drop beyond tolerance, or a lost score."""
        return self.status in ("REGRESSION", "MISSING")


@dataclass(frozen=True)
class PairReport:
    """The comparisons of one baseline model against one current model."""

    baseline_model: str
    current_model: str
    comparisons: tuple[Comparison, ...]


@dataclass(frozen=True)
class RegressReport:
    """Everything the gate decided, plus warnings about inputs it skipped."""

    pairs: tuple[PairReport, ...]
    tolerance: float
    warnings: tuple[str, ...] = ()
    alpha: float = DEFAULT_ALPHA
    exact: bool = True

    @property
    def possible_drops(self) -> list[tuple[PairReport, Comparison]]:
        """Drops beyond the tolerance that are not significant: warnings, not failures."""
        return [(p, c) for p in self.pairs for c in p.comparisons if c.status == "possible drop"]

    @property
    def per_document(self) -> bool:
        """Whether any benchmark was compared on per-document scores."""
        return any(c.interval is not None for p in self.pairs for c in p.comparisons)

    @property
    def failures(self) -> list[tuple[PairReport, Comparison]]:
        """The failing benchmarks with the model pair each belongs to."""
        return [(p, c) for p in self.pairs for c in p.comparisons if c.failed]


@dataclass(frozen=True)
class GateSettings:
    """How the gate decides: `exact` compares aggregates against the tolerance alone."""

    tolerance: float = DEFAULT_TOLERANCE
    alpha: float = DEFAULT_ALPHA
    exact: bool = False
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = DEFAULT_SEED
    aggregations: Aggregations | None = field(default=None, compare=False)


def aggregate_status(
    bench: Benchmark, base: float | None, cur: float | None, tolerance: float
) -> str:
    """The status of a comparison of aggregates: the tolerance alone decides."""
    if cur is None:
        return "MISSING"
    if base is None:
        return "new"
    gain = cur - base if bench.higher_is_better else base - cur
    if gain < -tolerance - _EPSILON:
        return "REGRESSION"
    return "improved" if gain > tolerance + _EPSILON else "ok"


def interval_status(
    bench: Benchmark, interval: Interval, settings: GateSettings
) -> tuple[str, str | None]:
    """The status of a per-document comparison and, when not its significance, the rule that
    decided it. A drop beyond the tolerance fails when significant; when the comparison is
    underpowered (its test cannot reach alpha on these documents, or there is no spread to
    size it by), the tolerance alone decides; a drop beyond the detectable drop always fails."""
    gain = interval.delta if bench.higher_is_better else -interval.delta
    significant = interval.p_value < settings.alpha
    underpowered = _underpowered(interval, settings.alpha)
    if gain < -settings.tolerance - _EPSILON:
        if significant:
            return "REGRESSION", None
        if underpowered:
            return "REGRESSION", f"underpowered ({underpowered}): decided by the tolerance"
        if interval.detectable is not None and -gain > interval.detectable + _EPSILON:
            return "REGRESSION", (
                f"decided by the detectable drop: {-gain:.2f} is beyond the "
                f"{interval.detectable:.2f} these documents detect"
            )
        return "possible drop", None
    if gain > settings.tolerance + _EPSILON and significant:
        return "improved", None
    return "ok", None


def _underpowered(interval: Interval, alpha: float) -> str | None:
    """Why this comparison cannot find a drop of the tolerance's size significant, or None."""
    if interval.floor_p >= alpha:
        return (
            f"the {interval.test} on these documents gives no p-value below "
            f"{interval.floor_p:.3g} >= alpha {alpha:g}"
        )
    if not math.isfinite(interval.p_value):
        return f"the {interval.test} gave no p-value"
    if interval.detectable is None and interval.delta != 0:
        return "every document changed by the same amount: no spread to size a test by"
    return None
