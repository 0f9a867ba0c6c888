"""`dragonfly-eval run` refuses task YAMLs that would run code outside dragonfly_eval and
lmms_eval, on every route lmms-eval 0.7.3 takes to load one, before lmms-eval starts.

Each payload is a harmless marker file. Where a route is a property of lmms-eval's own loader,
a control first shows that lmms-eval really runs the payload (the marker appears), so the guard
is tested against what lmms-eval does, not against a guess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lmms_eval.utils
import pytest
import yaml

from dragonfly_eval.cli import main
from dragonfly_eval.paths import task_yaml_dir

PAYLOAD = (
    "from pathlib import Path\nPath({marker!r}).write_text('ran')\n\n\n"
    "def doc_to_text(doc):\n    return ''\n"
)
TEMPLATE = "{{{{ lipsum.__globals__['os'].system('touch {marker}') }}}}"


@pytest.fixture
def marker(tmp_path) -> Path:
    """The file a payload writes when it runs."""
    return tmp_path / "marker"


@pytest.fixture
def no_lmms_eval(monkeypatch):
    """Fail the test if `dragonfly-eval run` starts lmms-eval."""

    def started(*args, **kwargs):
        raise AssertionError("lmms-eval was started")

    monkeypatch.setattr("dragonfly_eval.runner.start.relay", started)


def task(folder: Path, text: str, name: str = "task.yaml") -> Path:
    """A task YAML holding `text` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"task: dragonfly_guard_x\noutput_type: generate_until\n{text}")
    return path


def payload(path: Path, marker: Path) -> Path:
    """A Python file that writes `marker` when executed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PAYLOAD.format(marker=str(marker)))
    return path


def refused(tmp_path: Path, capsys, *argv: str) -> str:
    """`dragonfly-eval run ARGV`'s refusal message (asserting exit code 2)."""
    code = main(["run", "--output_path", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "refusing to run" in err
    return err


def test_file_beside_the_yaml_named_after_the_dotted_name_is_refused(
    tmp_path, marker, capsys, no_lmms_eval
):
    tasks = tmp_path / "tasks"
    yaml_file = task(tasks, "doc_to_text: !function dragonfly_eval.pwn.doc_to_text\n")
    payload(tasks / "dragonfly_eval.pwn.py", marker)
    lmms_eval.utils.load_yaml_config(str(yaml_file))  # control: lmms-eval runs that file
    assert marker.exists()
    marker.unlink()

    err = refused(tmp_path, capsys, "--include_path", str(tasks), "--tasks", "dragonfly_guard_x")
    assert str(yaml_file) in err and "dragonfly_eval.pwn.doc_to_text" in err
    assert "dragonfly_eval.pwn.py" in err
    assert not marker.exists()


def test_file_beside_the_yaml_shadowing_a_real_module_is_refused(
    tmp_path, marker, capsys, no_lmms_eval
):
    tasks = tmp_path / "tasks"
    yaml_file = task(tasks, "doc_to_visual: !function dragonfly_eval.tasks.mini.doc_to_visual\n")
    shadow = payload(tasks / "dragonfly_eval.tasks.mini.py", marker)
    shadow.write_text(shadow.read_text() + "\n\ndef doc_to_visual(doc):\n    return []\n")
    lmms_eval.utils.load_yaml_config(str(yaml_file))  # control: the shadow runs, not the module
    assert marker.exists()
    marker.unlink()

    err = refused(tmp_path, capsys, "--include_path", str(tasks), "--tasks", "dragonfly_guard_x")
    assert str(yaml_file) in err and str(shadow) in err
    assert not marker.exists()


def test_dotted_name_climbing_out_of_the_package_is_refused(tmp_path, marker, capsys, no_lmms_eval):
    elsewhere = payload(tmp_path / "elsewhere" / "pwn.py", marker)
    tasks = tmp_path / "a" / "b" / "tasks"
    climb = "/.." * 4 + "/elsewhere/pwn"  # the first ".." undoes "dragonfly_eval."
    ref = f"dragonfly_eval.{climb}.doc_to_text"
    yaml_file = task(tasks, f"doc_to_text: !function {ref}\n")
    lmms_eval.utils.load_yaml_config(str(yaml_file))  # control: `..` reaches the file
    assert marker.exists()
    marker.unlink()

    err = refused(tmp_path, capsys, "--include_path", str(tasks), "--tasks", "dragonfly_guard_x")
    assert str(yaml_file) in err and ref in err and str(elsewhere) in err
    assert not marker.exists()


def test_template_reaching_python_internals_is_refused(tmp_path, marker, capsys, no_lmms_eval):
    template = TEMPLATE.format(marker=marker)
    lmms_eval.utils.apply_template(template, {})  # control: lmms-eval's renderer runs it
    assert marker.exists()
    marker.unlink()
    tasks = tmp_path / "tasks"
    yaml_file = task(tasks, yaml.safe_dump({"doc_to_text": template}))

    err = refused(tmp_path, capsys, "--include_path", str(tasks), "--tasks", "dragonfly_guard_x")
    assert str(yaml_file) in err and "__globals__" in err
    assert not marker.exists()


def test_yaml_given_as_a_tasks_path_is_checked(tmp_path, marker, capsys, no_lmms_eval):
    loose = tmp_path / "loose"
    yaml_file = task(loose, "doc_to_text: !function pwn.doc_to_text\n")
    payload(loose / "pwn.py", marker)

    err = refused(tmp_path, capsys, "--tasks", f"mme,{yaml_file}")
    assert str(yaml_file) in err and "pwn.doc_to_text" in err
    folder_err = refused(tmp_path, capsys, "--tasks", str(loose))
    assert str(yaml_file) in folder_err
    assert not marker.exists()


@pytest.mark.parametrize("key", ["tasks", "include_path"])
def test_yaml_named_by_a_config_file_is_checked(tmp_path, marker, capsys, no_lmms_eval, key):
    loose = tmp_path / "loose"
    yaml_file = task(loose, "doc_to_text: !function pwn.doc_to_text\n")
    payload(loose / "pwn.py", marker)
    value = str(yaml_file if key == "tasks" else loose)
    config = tmp_path / "cfg.yaml"
    config.write_text(
        yaml.safe_dump([{"tasks": "mme"}, {"tasks": "dragonfly_guard_x", key: value}])
    )

    err = refused(tmp_path, capsys, "--config", str(config))
    assert str(yaml_file) in err and "pwn.doc_to_text" in err
    assert not marker.exists()


@pytest.mark.parametrize(
    "form",
    [
        ["--include_path", "{good}", "--include_path", "{bad}"],  # argparse keeps the last
        ["--include", "{bad}"],  # a prefix of --include_path
        ["--include_path={bad}"],
    ],
)
def test_every_include_path_form_lmms_eval_accepts_is_checked(
    tmp_path, marker, capsys, no_lmms_eval, form
):
    bad = tmp_path / "bad"
    yaml_file = task(bad, "doc_to_text: !function pwn.doc_to_text\n")
    payload(bad / "pwn.py", marker)
    argv = [arg.format(good=task_yaml_dir(), bad=bad) for arg in form]

    err = refused(tmp_path, capsys, *argv, "--tasks", "dragonfly_guard_x")
    assert str(yaml_file) in err
    assert not marker.exists()


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize("where", ["task", "config"])
def test_billion_laughs_yaml_is_refused_without_expanding_it(tmp_path, capsys, no_lmms_eval, where):
    path = tmp_path / "tasks" / "laughs.yaml"
    path.parent.mkdir()
    path.write_text("task: dragonfly_guard_x\n" + LAUGHS)  # 9**9 strings once expanded
    argv = ["--include_path", str(path.parent)] if where == "task" else ["--config", str(path)]

    err = refused(tmp_path, capsys, *argv, "--tasks", "dragonfly_guard_x")
    assert str(path) in err and "aliases are expanded" in err


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("doc_to_text: !function os.system\n", "os.system"),
        ("doc_to_text: !!python/name:os.system\n", "tag not allowed"),
        ("doc_to_text: !function lmms_eval.tasks.motionbench.utils.copy2\n", "imports from shutil"),
    ],
)
def test_code_of_other_modules_is_refused(tmp_path, capsys, no_lmms_eval, text, problem):
    yaml_file = task(tmp_path / "tasks", text)
    err = refused(tmp_path, capsys, "--include_path", str(yaml_file.parent), "--tasks", "x")
    assert str(yaml_file) in err and problem in err


def test_an_included_yaml_is_checked(tmp_path, marker, capsys, no_lmms_eval):
    base = task(tmp_path / "elsewhere", "doc_to_text: !function pwn.doc_to_text\n", "base.yaml")
    payload(base.parent / "pwn.py", marker)
    tasks = tmp_path / "tasks"
    task(tasks, "include: ../elsewhere/base.yaml\n")

    err = refused(tmp_path, capsys, "--include_path", str(tasks), "--tasks", "dragonfly_guard_x")
    assert "base.yaml" in err and "pwn.doc_to_text" in err
    assert not marker.exists()


def test_an_include_cycle_is_followed_once(tmp_path):
    from dragonfly_eval.lmms_files.task_guard import check_task_folder

    task(tmp_path, "include: b.yaml\n", "a.yaml")
    task(tmp_path, "include: a.yaml\ndoc_to_text: !function os.system\n", "b.yaml")
    problems = check_task_folder(tmp_path)
    assert len(problems) == 2 and all("b.yaml" in p for p in problems)


def test_the_shipped_tasks_and_built_in_task_names_pass(tmp_path):
    from dragonfly_eval.runner.start import LMMS_EVAL, lmms_eval_command
    from dragonfly_eval.runner.taskcheck import check_command

    cmd = lmms_eval_command(["--tasks", "mme,pope,dragonfly_mini"], str(tmp_path), False)
    assert check_command(cmd[len(LMMS_EVAL) :]) == []
    folder = ["--include_path", str(task_yaml_dir()), "--tasks", str(task_yaml_dir() / "mini")]
    assert check_command(folder) == []


def test_lmms_eval_templates_pass_the_template_check():
    from dragonfly_eval.lmms_files.task_guard import template_problem
    from dragonfly_eval.lmms_files.task_yaml import read_yaml

    builtin = Path(lmms_eval.__file__).parent / "tasks"
    files = [p for p in builtin.rglob("*.yaml") if "{{" in p.read_text(errors="replace")]
    templates = []
    for path in files:
        stack = [read_yaml(path, "guard")]
        while stack:
            item = stack.pop()
            if isinstance(item, dict | list):
                stack += item.values() if isinstance(item, dict) else item
            elif isinstance(item, str) and "{{" in item:
                templates.append(item)
    assert len(templates) > 20
    own = [
        "{{question}}",
        "{{choices[answer]}}",
        "{% for c in choices %}{{ loop.index }}. {{ c }}\n{% endfor %}",
    ]
    assert [t for t in templates + own if template_problem(t)] == []


@pytest.mark.parametrize(
    "template",
    [
        "{{ cycler.__init__.__globals__.os }}",
        "{{ x['__class__'] }}",
        "{{ lipsum|attr('__globals__') }}",
        "{{ [lipsum]|map(attribute='__globals__')|list }}",
        "{{ '{0.__class__}'.format(x) }}",
        "{% if never %}{{ ().__class__.mro() }}{% endif %}",
    ],
)
def test_templates_the_sandbox_forbids_are_refused(template):
    from dragonfly_eval.lmms_files.task_guard import template_problem

    assert "sandbox forbids" in template_problem(template)


def test_lmms_eval_renders_templates_in_the_sandbox_under_run(monkeypatch, marker):
    from jinja2.exceptions import SecurityError

    from dragonfly_eval.runner.lmms_main import sandbox_templates

    computed = "{{ lipsum[g]['os'].system('touch " + str(marker) + "') }}"  # key from the doc
    monkeypatch.setattr(lmms_eval.utils, "env", lmms_eval.utils.env)
    sandbox_templates()
    with pytest.raises(SecurityError):
        lmms_eval.utils.apply_template(computed, {"g": "__globals__"})
    assert not marker.exists()
    assert lmms_eval.utils.apply_template("{{ q|regex_replace('a', 'b') }}", {"q": "aa"}) == "bb"
    assert (
        lmms_eval.utils.apply_template("{{choices[answer]}}", {"choices": "xy", "answer": 1}) == "y"
    )


def test_options_are_read_as_lmms_eval_reads_them(tmp_path):
    from dragonfly_eval.runner.cmdline import parse
    from dragonfly_eval.runner.runfiles import RunFolder, new_run_id, with_run_files
    from dragonfly_eval.runner.start import LMMS_EVAL, lmms_eval_command

    def read(user: list[str]):
        return parse(lmms_eval_command(user, str(tmp_path), True)[len(LMMS_EVAL) :])

    args = read(["--model=llava", "--include=x", "-c", "mine"])
    assert (args.model, args.include_path, args.use_cache, args.model_args) == (
        "llava",
        "x",
        "mine",
        "",
    )
    for user in (
        ["--model_args", "a=1", "--model_args", "pretrained=x,resume_store=s"],
        ["--model_a", "pretrained=x,resume_store=s"],
        ["--model_args=pretrained=x,resume_store=s"],
    ):
        model_args = read(with_run_files(user, RunFolder(tmp_path, new_run_id()))).model_args.split(
            ","
        )
        assert model_args[:2] == ["pretrained=x", "resume_store=s"], user  # the user's value wins
        assert [a for a in model_args if a.startswith("failure_report=")], user


def test_a_config_file_s_model_is_kept(tmp_path):
    from dragonfly_eval.runner.cmdline import evaluations
    from dragonfly_eval.runner.start import LMMS_EVAL, lmms_eval_command, uses_dragonfly

    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"model": "llava", "model_args": "pretrained=y"}))
    assert not uses_dragonfly(["--config", str(config)])
    cmd = lmms_eval_command(["--config", str(config)], str(tmp_path), False)
    ((args, _),) = evaluations(cmd[len(LMMS_EVAL) :])
    assert (args.model, args.model_args) == ("llava", "pretrained=y")


def test_the_guard_runs_once_per_run(tmp_path, monkeypatch):
    from dragonfly_eval.runner import start

    calls = []
    real = start.check_command
    monkeypatch.setattr(start, "check_command", lambda argv: calls.append(argv) or real(argv))
    monkeypatch.setattr(start, "relay", lambda cmd: (1, ""))  # lmms-eval "fails" at once
    argv = ["run", "--output_path", str(tmp_path / "out"), "--tasks", "dragonfly_mini_vqa"]
    assert main([*argv, "--model_args", "pretrained=dragonfly-tiny,device=cpu"]) == 1
    assert len(calls) == 1


def test_a_command_line_lmms_eval_rejects_is_left_to_lmms_eval(tmp_path):
    from dragonfly_eval.runner.taskcheck import check_command

    assert check_command(["--tasks", "mme", "--no_such_option", "1"]) == []
    assert check_command(["--limit", "not-a-number"]) == []


@pytest.mark.slow
def test_a_template_key_computed_from_the_document_fails_in_the_sandbox_under_run(
    tmp_path, marker, offline_env
):
    images = task_yaml_dir() / "mini" / "data" / "images"
    record = {"question": "Value?", "answer": "1", "g": "__globals__", "type": "t"}
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "docs.jsonl").write_text(
        json.dumps({**record, "image_path": str(images / "chart_00.png")})
    )
    text = (task_yaml_dir() / "mini" / "chart.yaml").read_text()
    text = text.replace("dragonfly_mini_chart", "dragonfly_guard_template")
    text = text.replace("data/chart.jsonl", str(tasks / "docs.jsonl"))
    computed = "{{ lipsum[g]['os'].system('touch " + str(marker) + "') }}{{ question }}"
    text = text.replace(
        "doc_to_text: !function lmms_eval.tasks.chartqa.utils.chartqa_doc_to_text",
        f"doc_to_text: {json.dumps(computed)}",
    )
    (tasks / "template.yaml").write_text(text)
    cmd = [
        sys.executable,
        "-m",
        "dragonfly_eval.cli",
        "run",
        "--output_path",
        str(tmp_path / "out"),
    ]
    cmd += ["--model_args", "pretrained=dragonfly-tiny,device=cpu,zoom=low", "--batch_size", "1"]
    cmd += ["--include_path", str(tasks), "--tasks", "dragonfly_guard_template"]
    done = subprocess.run(cmd, env=offline_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "SecurityError" in done.stdout + done.stderr
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["fifo", "large"])
def test_a_yaml_that_is_not_a_small_regular_file_is_refused_unread(
    tmp_path, capsys, no_lmms_eval, kind
):
    path = tmp_path / "tasks" / "x.yaml"
    path.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(path)  # reading it would wait forever
    else:
        path.write_text("task: x\n" + "#" * (5 * 1024 * 1024))
    err = refused(tmp_path, capsys, "--include_path", str(path.parent), "--tasks", "x")
    assert str(path) in err and ("not a regular file" in err or "larger than" in err)


def test_plugins_outside_the_two_packages_are_refused(tmp_path, capsys, no_lmms_eval, monkeypatch):
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"tasks": "mme", "env": {"LMMS_EVAL_PLUGINS": "evil_pkg"}}))
    err = refused(tmp_path, capsys, "--config", str(config))
    assert "LMMS_EVAL_PLUGINS names evil_pkg" in err
    monkeypatch.setenv("LMMS_EVAL_PLUGINS", "other_pkg")
    err = refused(tmp_path, capsys, "--tasks", "mme")
    assert "LMMS_EVAL_PLUGINS names other_pkg" in err


@pytest.mark.slow
def test_control_lmms_eval_itself_runs_the_code_of_a_config_a_tasks_path_and_the_last_include(
    tmp_path, offline_env
):
    """Without the guard, lmms-eval runs both payloads: the routes the guard checks are real."""
    markers = {name: tmp_path / f"marker_{name}" for name in ("path", "include")}
    loose = tmp_path / "loose"
    path_yaml = task(loose, "doc_to_text: !function pwn.doc_to_text\n", "path.yaml")
    payload(loose / "pwn.py", markers["path"])
    bad = tmp_path / "bad"
    task(bad, "task: dragonfly_guard_inc\ndoc_to_text: !function pwn.doc_to_text\n")
    payload(bad / "pwn.py", markers["include"])
    config = tmp_path / "cfg.yaml"  # one evaluation per entry; a failing one does not stop the next
    config.write_text(yaml.safe_dump([{"tasks": str(path_yaml)}, {"tasks": "dragonfly_guard_inc"}]))
    cmd = [sys.executable, "-m", "lmms_eval", "--config", str(config), "--limit", "1"]
    cmd += ["--model", "dragonfly", "--model_args", "pretrained=dragonfly-tiny,device=cpu"]
    cmd += ["--include_path", str(task_yaml_dir()), "--include", str(bad)]
    done = subprocess.run(
        cmd, env=offline_env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert markers["path"].exists() and markers["include"].exists(), done.stdout[-4000:]
