"""`dragonfly-eval run`/`demo` check what the chosen tasks need before lmms-eval starts."""

from pathlib import Path

import pytest

from dragonfly_eval.cli import main
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.runner import demo, preflight, start
from dragonfly_eval.runner.preflight import (
    is_judged,
    needs_hub_token,
    needs_java,
    resolve_tasks,
    task_problems,
    uses_pycocoevalcap,
)

JUDGE_ENV = {
    "OPENAI_API_URL": "http://localhost:8000/v1",
    "OPENAI_API_KEY": "x",
    "MODEL_VERSION": "m",
}
NAMES = [
    "dragonfly_mini",
    "dragonfly_roco",
    "dragonfly_coco2017_cap_val",
    "dragonfly_ai2d",
    "dragonfly_mmvet",
    "dragonfly_mmbench_en_dev",
    "dragonfly_mmbench_en_dev_static",
    "coco2017_cap",
    "flickr30k_test",
    "nocaps_val",
    "textcaps_val",
    "textvqa_val",
]


@pytest.fixture(scope="module")
def tasks():
    """Task name -> TaskSpec for project and built-in tasks, resolved once."""
    return {t.name: t for t in resolve_tasks(NAMES, str(task_yaml_dir()))}


@pytest.fixture
def no_java(monkeypatch, tmp_path):
    """A PATH on which there is no `java`."""
    empty = tmp_path / "bin-without-java"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def no_token(monkeypatch):
    """No Hugging Face token: neither HF_TOKEN nor a saved login."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)


def test_groups_and_tags_expand_to_their_tasks(tasks):
    mini = {
        f"dragonfly_mini_{n}" for n in ("vqa", "vqa_nll", "chart", "doc", "mc", "mc_ppl", "yesno")
    }
    assert mini | {"dragonfly_mini_caption"} <= set(tasks)
    assert {"coco2017_cap_val", "coco2017_cap_test"} <= set(tasks)  # lmms-eval's own group
    assert "dragonfly_mini" not in tasks and "coco2017_cap" not in tasks
    assert tasks["coco2017_cap_val"].yaml_path.name == "coco2017_cap_val.yaml"


def test_captioning_tasks_need_java_found_from_their_scoring_code(tasks):
    captioning = [
        "dragonfly_mini_caption",
        "dragonfly_roco",
        "dragonfly_coco2017_cap_val",
        "coco2017_cap_val",
        "flickr30k_test",
        "nocaps_val",
        "textcaps_val",
    ]
    assert all(needs_java(tasks[name]) for name in captioning)
    # COCO's test split only writes a submission file: no pycocoevalcap, no Java.
    others = ["coco2017_cap_test", "textvqa_val", "dragonfly_mini_vqa", "dragonfly_ai2d"]
    assert not any(needs_java(tasks[name]) for name in others)


def test_java_rule_follows_calls_inside_the_module(tmp_path):
    module = tmp_path / "scoring.py"
    module.write_text(
        "from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer as Tok\n"
        "import pycocoevalcap.cider.cider\n"
        "def _tokenize(x):\n    return Tok().tokenize(x)\n"
        "def aggregate(results):\n    return _tokenize(results)\n"
        "def cider(results):\n    return pycocoevalcap.cider.cider.Cider()\n"
        "def submission(results):\n    return len(results)\n"
    )
    assert uses_pycocoevalcap(module, "aggregate") and uses_pycocoevalcap(module, "cider")
    assert not uses_pycocoevalcap(module, "submission")


def test_token_true_task_without_a_token_names_yaml_and_fixes(tasks, no_token):
    (problem,) = task_problems([tasks["dragonfly_ai2d"]])
    assert problem.need == "hf_token" and problem.task == "dragonfly_ai2d"
    assert str(tasks["dragonfly_ai2d"].yaml_path) in problem.message
    assert "hf auth login" in problem.message and "HF_TOKEN" in problem.message
    assert "hf download lmms-lab-encoder/ai2d --repo-type dataset" in problem.message


def test_token_or_a_local_copy_lets_token_true_tasks_start(tasks, monkeypatch, tmp_path):
    ai2d = tasks["dragonfly_ai2d"]
    monkeypatch.setenv("HF_TOKEN", "hf_example")
    assert task_problems([ai2d]) == []
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    monkeypatch.chdir(tmp_path)
    assert needs_hub_token(ai2d)
    (tmp_path / "lmms-lab-encoder" / "ai2d").mkdir(parents=True)  # the hub layout, from cwd
    assert not needs_hub_token(ai2d)
    in_yaml = {**ai2d.config, "dataset_path": "parquet", "dataset_kwargs": {"token": True}}
    in_yaml["dataset_kwargs"]["data_files"] = {"test": "/data/ai2d/*.parquet"}
    assert not needs_hub_token(preflight.TaskSpec("t", ai2d.yaml_path, in_yaml))


def test_judged_tasks_need_the_judge_variables(tasks, monkeypatch):
    for name in [*JUDGE_ENV, "API_TYPE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_example")
    assert not is_judged(tasks["dragonfly_mmbench_en_dev_static"])
    judged = [tasks["dragonfly_mmvet"], tasks["dragonfly_mmbench_en_dev"]]
    problems = task_problems(judged)
    assert [(p.task, p.need) for p in problems] == [(t.name, "judge") for t in judged]
    assert all("OPENAI_API_URL" in p.message for p in problems)
    for name, value in JUDGE_ENV.items():
        monkeypatch.setenv(name, value)
    assert task_problems(judged) == []


def test_demo_leaves_the_caption_task_out_without_java(tasks, no_java):
    mini = [t for t in tasks.values() if t.name.startswith("dragonfly_mini_")]
    selected, left_out = demo.demo_selection(mini, task_problems(mini))
    assert [p.task for p in left_out] == ["dragonfly_mini_caption"]
    assert "Java" in left_out[0].message
    assert set(selected.split(",")) == {t.name for t in mini} - {"dragonfly_mini_caption"}


def test_demo_runs_the_whole_mini_suite_with_java(tasks, monkeypatch, tmp_path):
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(java.parent))
    mini = [t for t in tasks.values() if t.name.startswith("dragonfly_mini_")]
    assert demo.demo_selection(mini, task_problems(mini)) == (demo.DEMO_TASKS, [])


def test_run_without_java_stops_before_lmms_eval_starts(no_java, monkeypatch, tmp_path, capsys):
    def no_lmms_eval(*args, **kwargs):
        raise AssertionError(f"lmms-eval was started: {args}")

    monkeypatch.setattr(start, "relay", no_lmms_eval)
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--model_args",
            "pretrained=dragonfly-tiny,device=cpu",
            "--tasks",
            "dragonfly_mini_caption",
            "--output_path",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "task dragonfly_mini_caption" in err and "Install Java" in err
    assert "apt-get install default-jre-headless" in err
    assert not out.exists()


def test_task_yaml_given_as_a_file_is_checked(no_java):
    (task,) = resolve_tasks([str(Path(task_yaml_dir()) / "mini" / "caption.yaml")], None)
    assert task.name == "dragonfly_mini_caption" and needs_java(task)
