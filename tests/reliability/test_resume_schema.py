"""A resume store that is a sound SQLite file of another layout is refused before a model loads,
like a damaged one: one line naming the file, exit 2, and no advice to resume it again."""

from __future__ import annotations

import sqlite3
import subprocess

import pytest
from reliability_helpers import run_command

from dragonfly_eval.run_store import ResumeStore, ResumeStoreError
from dragonfly_eval.runner.runfiles import RunFolder, new_run_id

# Each a valid SQLite database whose `answers` table is not the store's.
OTHER_LAYOUTS = {
    "other-columns": "CREATE TABLE answers (key TEXT PRIMARY KEY, value TEXT)",
    "renamed-column": (
        "CREATE TABLE answers (key TEXT PRIMARY KEY, request_type TEXT NOT NULL, task TEXT NOT "
        "NULL, doc_id TEXT NOT NULL, reply TEXT NOT NULL, run_id TEXT NOT NULL, created_at REAL "
        "NOT NULL)"
    ),
    "no-primary-key": (
        "CREATE TABLE answers (key TEXT, request_type TEXT NOT NULL, task TEXT NOT NULL, doc_id "
        "TEXT NOT NULL, answer TEXT NOT NULL, run_id TEXT NOT NULL, created_at REAL NOT NULL)"
    ),
}


def _store_of_layout(path, create):
    db = sqlite3.connect(path)
    db.execute(create)
    db.commit()
    db.close()


def test_resume_refuses_a_store_of_another_layout_before_loading_a_model(tmp_path, cli_env):
    out = tmp_path / "out"
    run = RunFolder(out.resolve(), new_run_id())
    run.folder.mkdir(parents=True)
    _store_of_layout(run.resume_store, OTHER_LAYOUTS["other-columns"])
    done = subprocess.run(
        run_command(out, "--resume", run.run_id),
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"resume store {run.resume_store}" in done.stderr
    assert "answers table has columns key TEXT PRIMARY KEY, value TEXT" in done.stderr
    assert "Delete it" in done.stderr and "--resume" not in done.stderr
    assert "lmms_eval" not in done.stderr  # stopped before lmms-eval started


@pytest.mark.parametrize("layout", sorted(OTHER_LAYOUTS))
def test_a_store_of_another_layout_is_refused_when_opened(tmp_path, layout):
    path = tmp_path / "resume.sqlite"
    _store_of_layout(path, OTHER_LAYOUTS[layout])
    with pytest.raises(ResumeStoreError, match=r"resume\.sqlite is damaged \(its answers table"):
        ResumeStore(path)


def test_a_store_this_module_wrote_is_accepted(tmp_path):
    path = tmp_path / "resume.sqlite"
    ResumeStore(path).close()
    ResumeStore(path).close()


def test_stored_answers_that_are_not_answers_are_answered_again(tmp_path):
    path = tmp_path / "resume.sqlite"
    store = ResumeStore(path)
    store.save(
        [
            ("gen", "generate_until", "t", 0, "a cat"),
            ("ll", "loglikelihood", "t", 1, (-1.5, True)),
            ("bad-json", "generate_until", "t", 2, "x"),
            ("bad-pair", "loglikelihood", "t", 3, (-1.0, False)),
            ("huge", "generate_until", "t", 4, "x"),
        ]
    )
    store.close()
    db = sqlite3.connect(path)
    for key, answer in [("bad-json", "{not json"), ("bad-pair", '["a", 1]'), ("huge", "9" * 400)]:
        db.execute("UPDATE answers SET answer = ? WHERE key = ?", (answer, key))
    db.commit()
    db.close()
    found = ResumeStore(path).lookup(["gen", "ll", "bad-json", "bad-pair", "huge"])
    assert found == {"gen": "a cat", "ll": (-1.5, True)}
