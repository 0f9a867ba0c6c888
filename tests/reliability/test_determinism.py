import pytest
import torch
from reliability_helpers import samples

from dragonfly_eval.datagen import make_mini
from dragonfly_eval.harness.model import Dragonfly


@pytest.fixture
def restore_determinism():
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(before, warn_only=warn_only)


@pytest.mark.parametrize("flag", [True, False])
def test_harness_asks_for_deterministic_kernels_unless_told_not_to(flag, restore_determinism):
    torch.use_deterministic_algorithms(False)
    Dragonfly(pretrained="dragonfly-tiny", device="cpu", zoom="low", deterministic=flag)
    assert torch.are_deterministic_algorithms_enabled() is flag


def _without_times(records):
    return [{k: v for k, v in r.items() if "time" not in k and "date" not in k} for r in records]


@pytest.mark.slow
def test_two_greedy_runs_log_identical_samples(reference_runs):
    first, second = (samples(out, "dragonfly_mini_chart") for out in reference_runs)
    assert len(first) == make_mini.COUNTS["chart"]
    assert len({r["filtered_resps"] for r in first}) > 1  # real answers, not one constant
    assert _without_times(first) == _without_times(second)
