"""bench/suite_cost.py: the GPU-hours table adds up, and image reuse only ever saves time."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def suite_cost():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))
        yield importlib.import_module("suite_cost")


def test_suite_rows_and_total_are_the_sums_of_their_benchmarks(suite_cost):
    rows = suite_cost.cost_table(suite_cost.RequestCost())
    benches = [r for r in rows if not r[1].startswith("dragonfly_") and r[0] != "total"]
    assert len(benches) == len(suite_cost.BENCHMARKS)
    suites = {r[0]: r for r in rows if r[1].startswith("dragonfly_")}
    assert set(suites) == {"general", "caption", "med"}
    for suite, row in suites.items():
        part = [r for r in benches if r[0] == suite]
        for k in (2, 3, 4, 5):
            assert row[k] == pytest.approx(sum(r[k] for r in part))
    total = rows[-1]
    assert total[0] == "total"
    for k in (2, 3, 4, 5):
        assert total[k] == pytest.approx(sum(r[k] for r in suites.values()))


def test_reuse_saves_where_images_repeat_and_nowhere_else(suite_cost):
    cost = suite_cost.RequestCost()
    for bench in suite_cost.BENCHMARKS:
        plain, reused = cost.seconds(bench, reuse=False), cost.seconds(bench, reuse=True)
        if bench.images < bench.questions:
            assert reused < plain
        else:
            assert reused == pytest.approx(plain)
    pope = next(b for b in suite_cost.BENCHMARKS if b.name.startswith("POPE"))
    assert (pope.questions, pope.images) == (9000, 500)
    # 18 questions per image: reuse leaves about one eighteenth of the image work
    assert cost.seconds(pope, True) < cost.seconds(pope, False) / 5


def test_hours_scale_with_the_per_request_cost(suite_cost):
    slow = suite_cost.cost_table(suite_cost.RequestCost(samples_per_s=5.0, decode_s_per_token=0))
    fast = suite_cost.cost_table(suite_cost.RequestCost(samples_per_s=10.0, decode_s_per_token=0))
    assert fast[-1][4] == pytest.approx(slow[-1][4] / 2)
    assert fast[-1][5] == pytest.approx(slow[-1][5] / 2)


@pytest.mark.parametrize(
    "kwargs", [{"samples_per_s": 0}, {"image_share": 1.5}, {"decode_s_per_token": -1}]
)
def test_impossible_request_costs_are_refused(suite_cost, kwargs):
    with pytest.raises(ValueError, match="samples/s"):
        suite_cost.RequestCost(**kwargs)


def test_the_printed_table_divides_by_the_gpus(suite_cost, capsys):
    assert suite_cost.main(["--gpus", "4", "--samples-per-s", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 GPU h" in out
    total = next(line for line in out.splitlines() if line.startswith("ALL THREE SUITES"))
    one_gpu, _, four_gpus, _ = (float(v) for v in total.split()[-4:])
    assert four_gpus == pytest.approx(one_gpu / 4, abs=0.01)
