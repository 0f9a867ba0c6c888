import inspect
import subprocess
import sys
import textwrap

import pytest
from lmms_eval import utils as lmms_utils
from lmms_eval.api.group import ConfigurableGroup
from lmms_eval.api.task import TaskConfig

from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.tasks import catalog


def _names(task_manager, kind):
    return sorted(n for n, entry in task_manager.task_index.items() if entry["type"] == kind)


def test_every_yaml_defines_one_prefixed_task_or_group(task_manager):
    yaml_files = sorted(task_yaml_dir().rglob("*.yaml"))
    configs = catalog.task_configs()
    assert len(configs) == len(yaml_files), "a YAML is not a task or group, or a name is duplicated"
    assert all(name.startswith("dragonfly_") for name in configs)
    assert sorted(task_manager.task_index) == sorted(configs)


def test_every_task_config_resolves_through_lmms_eval(task_manager):
    tasks = _names(task_manager, "task")
    defined = [c for c in catalog.task_configs().values() if not isinstance(c.get("task"), list)]
    assert tasks and len(tasks) == len(defined)
    for name in tasks:
        config = lmms_utils.load_yaml_config(
            task_manager.task_index[name]["yaml_path"], mode="full"
        )
        task_config = TaskConfig(**config)
        assert task_config.task == name
        assert task_config.dataset_path and task_config.test_split
        assert callable(task_config.doc_to_visual), name
        assert callable(task_config.doc_to_text) or isinstance(task_config.doc_to_text, str), name
        for metric in task_config.metric_list:
            # a loss is the one metric where lower is better
            expected = not metric["metric"].endswith("_nll")
            assert metric.get("higher_is_better") is expected, (name, metric)
        if task_config.output_type == "generate_until":
            assert task_config.generation_kwargs["do_sample"] is False, (
                f"{name} must decode greedily"
            )
            assert float(task_config.generation_kwargs["temperature"]) == 0.0, name


def test_groups_name_only_known_tasks(task_manager):
    groups = _names(task_manager, "group")
    assert groups == [
        "dragonfly_caption",
        "dragonfly_general",
        "dragonfly_general_ext",
        "dragonfly_med",
        "dragonfly_mini",
        "dragonfly_pope",
    ]
    for name in groups:
        group = ConfigurableGroup(
            config=lmms_utils.load_yaml_config(task_manager.task_index[name]["yaml_path"])
        )
        for member in group.config["task"]:
            assert member in task_manager.task_index, (name, member)
    general = lmms_utils.load_yaml_config(task_manager.task_index["dragonfly_general"]["yaml_path"])
    assert len(general["task"]) == 10


def test_lmms_eval_cli_lists_every_task_and_group(offline_env):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmms_eval",
            "--tasks",
            "list",
            "--include_path",
            str(task_yaml_dir()),
        ],
        capture_output=True,
        text=True,
        env=offline_env,
        timeout=300,
    )
    listed = out.stdout + out.stderr
    for name in catalog.task_configs():
        assert f"- {name}\n" in listed, name


def _reference_results(name, task, doc):
    """What a model that always answers right returns for this document's requests."""
    if task.OUTPUT_TYPE == "multiple_choice":
        gold = task.doc_to_target(doc)
        # per choice (loss, is_greedy): the gold option has the lowest loss
        return [(0.1 if i == gold else 5.0, i == gold) for i in range(len(task.doc_to_choice(doc)))]
    if task.OUTPUT_TYPE == "loglikelihood":
        return [(0.0, True)]  # no loss on the reference answer
    return [_reference_prediction(name, task, doc)]


def _reference_prediction(name, task, doc):
    if name.endswith(("_vqa", "_doc", "_fine")):
        return doc["answers"][0]
    if name.endswith("_caption"):
        return doc["answer"][0]
    return str(task.doc_to_target(doc))


def test_mini_tasks_load_offline_and_score_reference_answers_in_full(
    task_manager, tmp_path, monkeypatch
):
    from lmms_eval.tasks import get_task_dict

    monkeypatch.chdir(tmp_path)  # lmms-eval's caption scorer writes submissions/ into the cwd

    (group_tasks,) = get_task_dict(["dragonfly_mini"], task_manager).values()
    assert sorted(group_tasks) == sorted(
        f"dragonfly_mini_{f}"
        for f in ("vqa", "vqa_nll", "chart", "doc", "mc", "mc_ppl", "yesno", "caption", "fine")
    )
    for name, task in group_tasks.items():
        docs = list(task.test_docs())
        assert 8 <= len(docs) <= 20, name
        assert task.doc_to_visual(docs[0])[0].mode == "RGB"
        per_doc = [task.process_results(doc, _reference_results(name, task, doc)) for doc in docs]
        headline = {
            "dragonfly_mini_yesno": "pope_f1_score",
            "dragonfly_mini_caption": "coco_Bleu_4",
        }
        metric = headline.get(name, next(iter(task.aggregation())))
        aggregate = task.aggregation()[metric]
        items = [r[metric] for r in per_doc]
        score = (
            aggregate(items, args=None)
            if "args" in inspect.signature(aggregate).parameters
            else aggregate(items)
        )
        perfect = 1.0 if task.higher_is_better()[metric] else 0.0
        assert score == pytest.approx(perfect, abs=1e-6), (name, metric, score)


def test_unreachable_dataset_error_names_the_dataset(tmp_path, offline_env):
    (tmp_path / "bad.yaml").write_text(
        textwrap.dedent("""\
        task: dragonfly_unreachable
        dataset_path: nobody/not-a-dataset
        test_split: test
        doc_to_text: "{{question}}"
        doc_to_target: answer
        """)
    )
    script = textwrap.dedent(f"""\
        from lmms_eval.tasks import TaskManager, get_task_dict
        tm = TaskManager(include_path={str(tmp_path)!r}, include_defaults=False)
        get_task_dict(["dragonfly_unreachable"], tm)
        """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=offline_env,
        timeout=300,
    )
    assert out.returncode != 0
    assert "nobody/not-a-dataset" in out.stderr
