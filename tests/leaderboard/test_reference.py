"""Published reference numbers: the shipped file and its validation."""

from __future__ import annotations

import pytest

from dragonfly_eval.leaderboard.reference import (
    ReferenceFileError,
    default_reference_path,
    load_reference,
    parse_reference,
)
from dragonfly_eval.leaderboard.suite import default_suite_path, load_suite
from dragonfly_eval.paths import leaderboards_dir

# Benchmarks of benchmarks.md's reference numbers that the suite does not run.
NOT_IN_SUITE = {"iu_xray", "peir_gross", "mimic_cxr"}


def _rows():
    return {r.name: r for r in load_reference(leaderboards_dir() / "reference.yaml")}


def test_reference_file_is_found_in_the_checkout():
    assert default_reference_path() == leaderboards_dir() / "reference.yaml"


def test_v1_general_rows_hold_the_blog_numbers_and_nothing_more():
    rows = _rows()
    v1 = rows["Dragonfly v1 (Llama-3-8B)"]
    assert v1.scores == {
        "ai2d": 63.6,
        "scienceqa_img": 80.5,
        "mmmu": 37.8,
        "mmvet": 35.9,
        "pope": 91.2,
    }
    assert "together.ai" in v1.source
    # a number the blog does not give is absent, never guessed
    assert rows["VILA-7B"].scores == {"scienceqa_img": 68.2, "mmvet": 34.9, "pope": 85.5}
    assert rows["Qwen-VL-Chat"].scores == {"ai2d": 52.3, "scienceqa_img": 68.2, "mmmu": 35.9}


def test_med_rows_split_headline_and_token_f1():
    rows = _rows()
    med1 = rows["Dragonfly-Med v1 (Llama-3-8B)"]
    assert (med1.scores["vqa_rad"], med1.extra["vqa_rad.token_f1"]) == (77.4, 59.6)
    assert (med1.scores["roco"], med1.extra["roco.rouge_l"], med1.extra["roco.meteor"]) == (
        40.1,
        19.3,
        15.1,
    )
    med2 = rows["Dragonfly-Med v2"]
    assert med2.scores == {"slake": 91.6} and med2.extra == {"pathvqa.token_f1": 67.1}
    assert "2406.00977" in med2.source
    assert rows["Med-PaLM M"].scores == {} and rows["Med-PaLM M"].extra == {
        "pathvqa.token_f1": 62.7
    }


def test_reference_keys_match_the_packaged_suite():
    path = default_suite_path()
    if not path.is_file():
        pytest.skip(f"{path} is written by the task-suite work and is not there yet")
    suite = load_suite(path)
    for row in _rows().values():
        for key in row.scores:
            assert key in suite.benchmarks or key in NOT_IN_SUITE, (row.name, key)
        for key in row.extra:
            bench, label = key.split(".")
            if bench not in NOT_IN_SUITE:
                assert label in suite.benchmarks[bench].extra, (row.name, key)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"sources": {}, "rows": [{"name": "x", "source": "s"}]}, "not listed under 'sources'"),
        (
            {
                "sources": {"s": {"title": "t"}},
                "rows": [{"name": "x", "source": "s", "scores": {"a": "63"}}],
            },
            "must be a number",
        ),
        ({"sources": {"s": {}}, "rows": [{"name": "x", "source": "s"}]}, "needs a title"),
        ({"sources": {"s": {"title": "t"}}, "rows": [{"source": "s"}]}, "needs a name"),
        ({"rows": []}, "'sources' must be a mapping"),
    ],
)
def test_malformed_reference_is_refused(raw, message):
    with pytest.raises(ReferenceFileError, match=message):
        parse_reference(raw)
