"""Shared fixtures: a small suite mapping, and (from tests/lmms_files) the results-file writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dragonfly_eval.leaderboard.suite import Suite, parse_suite
from tests.lmms_files.conftest import write_run  # noqa: F401 (the fixture, for these tests too)

SMALL_SUITE = {
    "suites": {
        "general": ["ai2d", "pope", "mme"],
        "caption": ["coco"],
        "med": ["vqa_rad"],
    },
    "benchmarks": {
        "ai2d": {
            "name": "AI2D",
            "task": "dragonfly_ai2d",
            "metric": "exact_match,flexible-extract",
            "scale": 100,
            "unit": "%",
            "higher_is_better": True,
        },
        "pope": {
            "name": "POPE",
            "task": ["dragonfly_pope_adv", "dragonfly_pope_pop", "dragonfly_pope_random"],
            "metric": "pope_f1_score,none",
            "scale": 100,
            "unit": "%",
            "higher_is_better": True,
            "extra": {"accuracy": {"metric": "pope_accuracy,none", "scale": 100}},
        },
        "mme": {
            "name": "MME",
            "task": "dragonfly_mme",
            "metric": "mme_perception_score,none",
            "scale": 1,
            "unit": "points",
            "higher_is_better": True,
            "extra": {"cognition": {"metric": "mme_cognition_score,none", "scale": 1}},
        },
        "coco": {
            "name": "COCO",
            "task": "dragonfly_coco2017_cap_val",
            "metric": "coco_CIDEr,none",
            "scale": 100,
            "unit": "%",
        },
        "vqa_rad": {
            "name": "VQA-RAD",
            "task": "dragonfly_med",
            "metric": "closed_accuracy,none",
            "scale": 100,
            "unit": "%",
        },
    },
}


@pytest.fixture
def suite() -> Suite:
    """The small suite mapping most tests use."""
    return parse_suite(SMALL_SUITE)


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    """The small suite mapping written to a YAML file (for the CLI's --suite-file)."""
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(SMALL_SUITE), encoding="utf-8")  # JSON is valid YAML
    return path
