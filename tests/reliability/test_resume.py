import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from lmms_eval.api.instance import Instance
from PIL import Image
from reliability_helpers import RESUME_TASKS, metrics, results_file, run_cli, run_command, samples
from rich.console import Console

from dragonfly_eval.harness.model import Dragonfly
from dragonfly_eval.run_store import (
    ResumeStore,
    answer_with_store,
    checkpoint_identity,
    request_key,
)
from dragonfly_eval.runner.runfiles import (
    LATEST,
    RESUME_STORE,
    RUNS_DIR,
    RunError,
    RunFolder,
    new_run_id,
    release,
    run_ids,
    start_run,
)


def test_store_keeps_answers_across_connections(tmp_path):
    store = ResumeStore(tmp_path / "s.sqlite")
    key = request_key("model", "loglikelihood", "t", "test", 3, "ctx", " cont")
    store.save([(key, "loglikelihood", "t", 3, (-1.5, True))])
    store.close()
    assert ResumeStore(tmp_path / "s.sqlite").lookup([key, "other"]) == {key: (-1.5, True)}


def test_key_depends_on_everything_that_decides_the_answer():
    base = ("model", "generate_until", "t", "test", 3, "ctx", '{"max_new_tokens": 8}')
    keys = {request_key(*base)}
    for i in range(len(base)):
        changed = list(base)
        changed[i] = f"{changed[i]}x"
        keys.add(request_key(*changed))
    assert len(keys) == len(base) + 1


def test_only_pending_requests_are_computed_and_failures_are_not_stored(tmp_path):
    store = ResumeStore(tmp_path / "s.sqlite")
    keys = [f"k{i}" for i in range(4)]
    labels = [("t", i) for i in range(4)]
    store.save([("k1", "generate_until", "t", 1, "stored")])
    seen = []

    def compute(pending, save):
        seen.append(list(pending))
        answers = [f"new{i}" for i in pending]
        save(range(len(pending)), answers, [i == 2 for i in pending])  # request 2 failed
        return answers

    out = answer_with_store(store, "generate_until", keys, labels, compute)
    assert out == ["new0", "stored", "new2", "new3"]
    assert seen == [[0, 2, 3]]
    assert set(store.lookup(keys)) == {"k0", "k1", "k3"}


def _requests(model, n):
    rs = np.random.RandomState(0)
    images = [Image.fromarray(rs.randint(0, 255, (40, 50, 3), dtype=np.uint8)) for _ in range(n)]
    model.task_dict = {"t": {"test": {i: {"image": images[i]} for i in range(n)}}}
    gen = {"until": ["\n\n"], "max_new_tokens": 3, "temperature": 0}
    return [
        Instance(
            "generate_until",
            (f"Question {i}?", gen, lambda doc: [doc["image"]], i, "t", "test"),
            idx=0,
            metadata={"task": "t", "doc_id": i, "repeats": 1},
        )
        for i in range(n)
    ]


def test_harness_takes_stored_answers_without_running_the_model(tmp_path, monkeypatch):
    kwargs = dict(pretrained="dragonfly-tiny", device="cpu", zoom="low", batch_size=2)
    first = Dragonfly(resume_store=str(tmp_path / "s.sqlite"), **kwargs)
    answers = first.generate_until(_requests(first, 4))
    again = Dragonfly(resume_store=str(tmp_path / "s.sqlite"), **kwargs)

    def must_not_run(*args, **kw):
        raise AssertionError("the model ran for a stored answer")

    monkeypatch.setattr(again.engine, "generate", must_not_run)
    assert again.generate_until(_requests(again, 4)) == answers


def _store_rows(out):
    """(key, request_type, run_id) of every answer in the resume stores under `out`."""
    rows = []
    for path in out.glob(f"{RUNS_DIR}/*/{RESUME_STORE}"):
        with sqlite3.connect(path) as db:
            try:
                rows += db.execute("SELECT key, request_type, run_id FROM answers").fetchall()
            except sqlite3.OperationalError:  # table not created yet
                pass
    return rows


def _kill_midway(out, env):
    """Start a run and kill it (the whole process group) once 3 answers are stored."""
    proc = subprocess.Popen(
        run_command(out, tasks=RESUME_TASKS),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # lmms-eval runs as a child: kill the whole group
    )
    try:
        deadline = time.monotonic() + 240
        while len(_store_rows(out)) < 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no answers stored in time"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _per_type(rows):
    return Counter(request_type for _, request_type, _ in rows)


@pytest.mark.slow
def test_killed_run_resumes_without_recomputing_and_matches(tmp_path, cli_env, reference_runs):
    reference_run = reference_runs[0]
    out = tmp_path / "run"
    _kill_midway(out, cli_env)
    before = _store_rows(out)
    (run_id,) = run_ids(out)
    total = _per_type(_store_rows(reference_run))
    assert 3 <= len(before) < sum(total.values()), "the run was not killed midway"
    assert not list(out.rglob("*_results.json"))

    done = run_cli(out, cli_env, "--resume", tasks=RESUME_TASKS)

    log = done.stdout + done.stderr
    assert f"resuming run {run_id}" in log
    after = _store_rows(out)
    assert set(before) <= set(after), "answers of the killed run were computed again"
    assert _per_type(after) == total
    for request_type, n in total.items():
        assert f"{_per_type(before)[request_type]} of {n} {request_type} answers found" in log
    assert metrics(out) == metrics(reference_run)
    for task in RESUME_TASKS.split(","):
        assert samples(out, task) == samples(reference_run, task)

    # Resuming the finished run: lmms-eval's cache (on with --resume) now serves every answer,
    # the loglikelihood pairs among them as JSON lists.
    again = run_cli(out, cli_env, "--resume", run_id, tasks=RESUME_TASKS)
    assert again.stderr.count("served from cache") == len(total), again.stderr[-4000:]
    (written,) = re.findall(r"results written to (\S+)", again.stderr)
    assert json.loads(Path(written).read_text())["results"] == _results_section(reference_run)


def _results_section(out):
    return json.loads(results_file(out).read_text())["results"]


def test_resume_refuses_a_damaged_store_before_loading_a_model(tmp_path, cli_env):
    out = tmp_path / "out"
    run = RunFolder(out.resolve(), new_run_id())
    run.folder.mkdir(parents=True)
    run.resume_store.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)  # cut short
    done = subprocess.run(
        run_command(out, "--resume", run.run_id), env=cli_env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert f"resume store {run.resume_store} is damaged" in done.stderr
    assert "Delete it" in done.stderr
    assert "lmms_eval" not in done.stderr  # stopped before lmms-eval started


def test_resume_names_an_unknown_run_and_a_run_in_use(tmp_path):
    console = Console(file=StringIO())
    with pytest.raises(RunError, match="no such run"):
        start_run(tmp_path, "20990101T000000Z-abcdef", console)
    first = start_run(tmp_path, None, console)
    ResumeStore(first.resume_store).close()  # as its harness would have made it
    try:
        with pytest.raises(RunError, match="in use by another process"):
            start_run(tmp_path, first.run_id, console)
        fresh = start_run(tmp_path, LATEST, console)  # the newest run is busy: a new one
        assert fresh.run_id != first.run_id and not fresh.resumed
        release(fresh)
    finally:
        release(first)
    resumed = start_run(tmp_path, LATEST, console)
    assert resumed.resumed and resumed.run_id == first.run_id  # the newest run with a store
    release(resumed)


def test_checkpoint_identity_follows_the_files_of_a_local_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"0" * 8)
    first = checkpoint_identity(str(tmp_path))
    assert checkpoint_identity(str(tmp_path)) == first
    (tmp_path / "notes.txt").write_text("not part of the model")
    assert checkpoint_identity(str(tmp_path)) == first
    (tmp_path / "model.safetensors").write_bytes(b"1" * 9)  # retrained in place
    assert checkpoint_identity(str(tmp_path)) != first
    assert checkpoint_identity("dragonfly-tiny") == "dragonfly-tiny"
