"""Positive control: the `oracle` model answers every document with its gold answer, so on the
real-schema copies every metric must reach its maximum. A lower score means an answer went back to
the wrong request, a column is read that the schema lacks, or a scorer is not wired."""

import subprocess
import sys

import pytest
from lmms_eval.tasks.mme.utils import eval_type_dict
from realschema_kit import (
    CAPTION_TASKS,
    HAS_JAVA,
    NO_JAVA,
    read_results,
    run_lmms_eval,
)

from dragonfly_eval.datagen.make_hub_layout import MME_CATEGORIES
from dragonfly_eval.paths import task_yaml_dir

MME_MAX_PER_CATEGORY = 200.0
PERCEPTION = sum(c in eval_type_dict["Perception"] for c, *_ in MME_CATEGORIES)
COGNITION = sum(c in eval_type_dict["Cognition"] for c, *_ in MME_CATEGORIES)

# task -> {metric key: its maximum}; built-in tasks and the dragonfly_* twins on the same copies.
MAXIMA = {
    "textvqa_val": {"exact_match,none": 1.0},
    "chartqa": {
        "relaxed_overall,none": 1.0,
        "relaxed_human_split,none": 1.0,
        "relaxed_augmented_split,none": 1.0,
    },
    "docvqa_val": {"anls,none": 1.0},
    "infovqa_val": {"anls,none": 1.0},
    "ai2d": {"exact_match,flexible-extract": 1.0},
    "mme": {
        "mme_perception_score,none": MME_MAX_PER_CATEGORY * PERCEPTION,
        "mme_cognition_score,none": MME_MAX_PER_CATEGORY * COGNITION,
    },
    "pope": {
        "pope_accuracy,none": 1.0,
        "pope_precision,none": 1.0,
        "pope_recall,none": 1.0,
        "pope_f1_score,none": 1.0,
    },
    "scienceqa_img": {"exact_match,none": 1.0},
    "seedbench_ppl": {"acc,none": 1.0},
    "gqa": {"exact_match,none": 1.0},
    "mmmu_val": {"mmmu_acc,none": 1.0},
    "dragonfly_textvqa_val": {"exact_match,none": 1.0},
    "dragonfly_docvqa_val": {"anls,none": 1.0},
    "dragonfly_ai2d": {"exact_match,flexible-extract": 1.0},
    "dragonfly_pope_adv": {"pope_accuracy,none": 1.0, "pope_f1_score,none": 1.0},
    "dragonfly_pope_pop": {"pope_accuracy,none": 1.0, "pope_f1_score,none": 1.0},
    "dragonfly_pope_random": {"pope_accuracy,none": 1.0, "pope_f1_score,none": 1.0},
    "dragonfly_gqa": {"exact_match,none": 1.0},
}


def _oracle_run(tasks, hub_mirror, env, out, *extra):
    run_lmms_eval(
        ["--model", "oracle", "--tasks", ",".join(tasks), "--output_path", str(out), *extra],
        env,
        hub_mirror,
    )
    return read_results(out)["results"]


def test_oracle_model_is_found_through_its_entry_point(realschema_env):
    code = (
        "from importlib.metadata import entry_points;"
        "print([e.value for e in entry_points(group='lmms_eval.models') if e.name == 'oracle'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=realschema_env
    )
    assert out.stdout.strip() == "['oracle_model:MANIFEST']", out.stderr


@pytest.mark.slow
def test_oracle_reaches_every_metric_maximum(hub_mirror, realschema_env, tmp_path):
    tasks = [t for t in MAXIMA if not t.startswith("dragonfly_pope_")] + ["dragonfly_pope"]
    include = ["--include_path", str(task_yaml_dir())]
    results = _oracle_run(tasks, hub_mirror, realschema_env, tmp_path / "out", *include)
    reached = {task: {k: results[task][k] for k in maxima} for task, maxima in MAXIMA.items()}
    assert reached == MAXIMA


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAVA, reason=NO_JAVA)
def test_oracle_captions_score_above_one_cider(hub_mirror, realschema_env, tmp_path):
    results = _oracle_run(CAPTION_TASKS, hub_mirror, realschema_env, tmp_path / "out")
    for task in CAPTION_TASKS:
        assert results[task]["coco_CIDEr,none"] > 1.0, results[task]
        assert results[task]["coco_Bleu_4,none"] > 0.5, results[task]
