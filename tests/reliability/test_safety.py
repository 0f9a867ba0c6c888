import ast
import inspect
import shutil
from pathlib import Path

import pytest
from transformers.modeling_utils import load_state_dict

import dragonfly_eval
from dragonfly_eval.cli import main
from dragonfly_eval.lmms_files.task_guard import check_task_folder, function_refs
from dragonfly_eval.lmms_files.task_yaml import task_yaml_files
from dragonfly_eval.modeling.checkpoint_files import CheckpointError
from dragonfly_eval.modeling.loading import load_dragonfly
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.runner import start
from dragonfly_eval.runner.runfiles import RUNS_DIR

PACKAGE = Path(dragonfly_eval.__file__).parent


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_pickle_only_checkpoint_is_refused_naming_the_override(tmp_path, v2_checkpoint):
    folder = tmp_path / "ckpt"
    shutil.copytree(v2_checkpoint, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (folder / "pytorch_model.bin").write_bytes(b"never read")
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        load_dragonfly(str(folder))


def test_every_torch_load_in_the_package_is_weights_only():
    calls = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                ok = weights_only and getattr(weights_only[0].value, "value", None) is True
                calls.append((path.name, node.lineno, bool(ok)))
    assert [c for c in calls if not c[2]] == []
    # Pickle weights (allow_pickle) load through transformers, whose loader is weights-only.
    assert inspect.signature(load_state_dict).parameters["weights_only"].default is True
    assert not any("weights_only=False" in path.read_text() for path in _sources())


def test_no_remote_code_is_trusted_anywhere():
    files = _sources() + task_yaml_files(task_yaml_dir())
    offenders = [str(p) for p in files if "trust_remote_code" in p.read_text()]
    assert offenders == []


def test_shipped_task_yamls_only_call_project_and_lmms_eval_functions():
    refs = [ref for path in task_yaml_files(task_yaml_dir()) for ref in function_refs(path)]
    assert len(refs) > 10
    assert check_task_folder(task_yaml_dir()) == []


def _task(folder: Path, text: str, name: str = "task.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("task: dragonfly_x\n" + text)
    return path


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("doc_to_text: !function os.system\n", "not a function of dragonfly_eval or lmms_eval"),
        ("doc_to_text: !function utils.doc_to_text\n", "not a function of dragonfly_eval"),
        ("doc_to_text: !!python/name:os.system\n", "tag not allowed"),
        ("process_results: [!function evil.mod.fn]\n", "evil.mod.fn"),
    ],
)
def test_task_code_outside_the_project_is_refused(tmp_path, text, problem):
    _task(tmp_path, text)
    (found,) = check_task_folder(tmp_path)
    assert problem in found and "task.yaml" in found


def test_included_yaml_is_checked_too(tmp_path):
    _task(tmp_path / "elsewhere", "doc_to_text: !function os.system\n", "base.yaml")
    _task(tmp_path / "tasks", f"include: {tmp_path / 'elsewhere' / 'base.yaml'}\n")
    assert any("os.system" in p for p in check_task_folder(tmp_path / "tasks"))


def test_a_file_beside_the_yaml_that_shadows_an_allowed_module_is_refused(tmp_path):
    _task(tmp_path, "doc_to_visual: !function dragonfly_eval.tasks.mini.doc_to_visual\n")
    assert check_task_folder(tmp_path) == []
    shadow = tmp_path / "dragonfly_eval.tasks.mini.py"  # lmms-eval's file name for the module
    shadow.write_text("")
    (found,) = check_task_folder(tmp_path)
    assert "mini.py" in found


def test_run_refuses_a_task_folder_with_foreign_code_before_starting_lmms_eval(
    tmp_path, monkeypatch, capsys
):
    _task(tmp_path / "tasks", "doc_to_text: !function os.system\n")

    def no_launch(*args, **kwargs):
        raise AssertionError("lmms-eval was started")

    monkeypatch.setattr(start, "relay", no_launch)
    code = main(
        ["run", "--output_path", str(tmp_path / "out"), "--include_path", str(tmp_path / "tasks")]
        + ["--tasks", "dragonfly_x"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "refusing to run" in err and "os.system" in err


def test_run_points_the_harness_at_its_resume_store_and_failure_log(tmp_path, monkeypatch, capsys):
    commands = []
    monkeypatch.setattr(start, "relay", lambda cmd: commands.append(cmd) or (0, ""))
    out = tmp_path / "out"

    def run(extra: list[str]) -> None:  # lmms-eval "ran" and wrote no results file
        with pytest.raises(start.Stopped):
            start.run(start.Plan(extra, str(out)))

    run(["--model_args", "pretrained=x,resume_store=mine"])
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"task": "t", "doc_id": 3, "reason": "OSError: x"}\n')
    run(["--model_args", f"pretrained=x,failure_report={mine}"])
    run(["--model", "llava", "--model_args", "a=b"])
    first, own_log, other = commands
    assert f"failure_report={mine}" in own_log[own_log.index("--model_args") + 1]
    err = capsys.readouterr().err
    assert "OSError: x" in err  # its failures are the ones reported
    args = first[first.index("--model_args") + 1].split(",")
    run_id = args[2].split("/")[-2]
    assert "--resume" not in err  # no answer was stored: nothing to continue
    assert not (out / "dragonfly_runs" / run_id).exists()  # nor a run folder left empty
    assert args[:2] == ["pretrained=x", "resume_store=mine"]  # the user's value wins
    assert args[2].startswith(f"failure_report={out.resolve() / RUNS_DIR}/")
    assert args[2].endswith("/failures.jsonl")
    assert other[other.index("--model_args") + 1] == "a=b"
