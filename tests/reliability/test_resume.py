import os
import signal
import sqlite3
import subprocess
import time

import numpy as np
import pytest
from lmms_eval.api.instance import Instance
from PIL import Image
from reliability_helpers import metrics, run_cli, run_command, samples

from dragonfly_eval.harness.model import Dragonfly
from dragonfly_eval.harness.resume import ResumeStore, answer_with_store, request_key
from dragonfly_eval.harness.runfiles import RESUME_STORE


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

    monkeypatch.setattr(again, "_generate_live", must_not_run)
    assert again.generate_until(_requests(again, 4)) == answers


def _store_rows(path):
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        try:
            return db.execute("SELECT key, run_id, created_at FROM answers").fetchall()
        except sqlite3.OperationalError:  # table not created yet
            return []


@pytest.mark.slow
def test_killed_run_resumes_without_recomputing_and_matches(tmp_path, cli_env, reference_runs):
    reference_run = reference_runs[0]
    out = tmp_path / "run"
    store = out / RESUME_STORE
    proc = subprocess.Popen(
        run_command(out),
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # lmms-eval runs as a child: kill the whole group
    )
    try:
        deadline = time.monotonic() + 240
        while len(_store_rows(store)) < 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no answers stored in time"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = _store_rows(store)
    total = len(samples(reference_run, "dragonfly_mini_chart"))
    assert 3 <= len(before) < total, "the run was not killed midway"
    assert not list(out.rglob("*_results.json"))

    done = run_cli(out, cli_env, "--resume")

    after = _store_rows(store)
    assert set(before) <= set(after), "answers of the killed run were computed again"
    fresh = {run_id for _, run_id, _ in after} - {run_id for _, run_id, _ in before}
    assert len(fresh) == 1
    assert sum(1 for row in after if row[1] in fresh) == total - len(before)
    log = done.stdout + done.stderr
    assert f"{len(before)} of {total} generate_until answers found" in log
    assert metrics(out) == metrics(reference_run)
    assert samples(out, "dragonfly_mini_chart") == samples(reference_run, "dragonfly_mini_chart")
