"""The paired statistics behind the gate."""

from __future__ import annotations

import math

import pytest

from dragonfly_eval.leaderboard.stats import (
    BOOTSTRAP,
    SIGN_TEST,
    T_TEST,
    detectable_change,
    paired_bootstrap,
    paired_means,
)
from tests.leaderboard.test_regress_samples import accuracy_scores, flipped


@pytest.mark.parametrize(("lost", "gained"), [(4, 0), (6, 0), (10, 6), (9, 1), (30, 12), (0, 5)])
def test_the_sign_test_interval_excludes_zero_exactly_when_p_is_below_005(lost, gained):
    base = accuracy_scores()
    interval = paired_means(base, flipped(base, lost, gained))
    assert interval.test == SIGN_TEST
    assert interval.delta == pytest.approx((gained - lost) / 400)
    assert interval.low <= interval.delta <= interval.high
    assert (interval.low > 0 or interval.high < 0) == (interval.p_value < 0.05)


def test_nothing_changed_is_a_zero_delta_with_p_1():
    base = accuracy_scores()
    interval = paired_means(base, base)
    assert (interval.delta, interval.low, interval.high, interval.p_value) == (0, 0, 0, 1)
    assert interval.detectable is None


def test_non_binary_scores_match_lmms_evals_paired_t_test():
    from lmms_eval.api.metrics import paired_ttest

    base = [0.5 + 0.3 * math.sin(i) for i in range(100)]
    cur = [b - 0.01 + 0.05 * math.cos(7 * i) for i, b in enumerate(base)]
    interval = paired_means(base, cur)
    expected = paired_ttest(cur, base)
    assert interval.test == T_TEST
    assert (interval.delta, interval.low, interval.high, interval.p_value) == pytest.approx(
        (expected["mean_diff"], expected["ci_lower"], expected["ci_upper"], expected["p_value"])
    )


def test_the_detectable_change_shrinks_with_more_documents():
    small = accuracy_scores(100, 70)
    large = accuracy_scores(1600, 1120)
    d_small = detectable_change(small, flipped(small, 5, 3))
    d_large = detectable_change(large, flipped(large, 80, 48))
    assert d_small == pytest.approx(4 * d_large, rel=0.05)  # ~ 1 / sqrt(n)


def _mean_of_tasks(tasks):
    return sum(sum(t) / len(t) for t in tasks) / len(tasks)


def test_the_bootstrap_is_seeded():
    base = [accuracy_scores(50, 30), accuracy_scores(40, 20)]
    cur = [flipped(base[0], 6, 1), flipped(base[1], 3, 3)]
    first = paired_bootstrap(base, cur, _mean_of_tasks, iterations=300, seed=7)
    again = paired_bootstrap(base, cur, _mean_of_tasks, iterations=300, seed=7)
    other = paired_bootstrap(base, cur, _mean_of_tasks, iterations=300, seed=8)
    assert first == again and first.test == BOOTSTRAP and first.n == 90
    assert (first.low, first.high) != (other.low, other.high)
    assert first.delta == pytest.approx(_mean_of_tasks(cur) - _mean_of_tasks(base))
    assert first.low < first.delta < first.high


def test_the_bootstrap_refuses_unpaired_inputs():
    with pytest.raises(ValueError, match="same, non-empty documents"):
        paired_bootstrap([[1, 0]], [[1]], _mean_of_tasks)
    with pytest.raises(ValueError, match="at least 10"):
        paired_bootstrap([[1, 0]], [[1, 0]], _mean_of_tasks, iterations=5)
