"""What a run keeps on disk while it works: the resume store and the failure log. The harness
writes them, `dragonfly-eval run` reads them; torch-free, below both.

The resume store holds the answers of finished requests, so an interrupted run resumes.
lmms-eval's own response cache (`--use_cache`) hands the model a whole request type at once and
stores the answers only after that call returns, so a run killed halfway through a request type
keeps nothing of it. This store is written by the harness after each batch (one SQLite
transaction, WAL journal: a committed batch survives `kill -9`) and read when the next run starts.

A key covers everything that decides an answer: the model's identity (checkpoint, revision,
dtype, zoom, ...), the request type, task, split, doc_id, the prompt, and the generation settings
or the scored continuation (`checkpoint_identity` stands for the checkpoint's files, so a
checkpoint rewritten in place starts afresh). Requests that failed (empty answer because of an
error) are not stored, so a resumed run tries them again. A damaged store file (cut short by a
full disk, a partial copy) or an SQLite file of another layout is refused with
`ResumeStoreError`, never read as half an answer set.

The failure log holds the requests that got an empty answer because of an error: the harness
appends one JSON line per failure as it happens (nothing is lost if the run dies); at the end
`dragonfly-eval run` reads the lines and writes them as one JSON document beside each results
file (`<date>_failures.json` beside `<date>_results.json`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.safe_json import JsonProblem, parse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    request_type TEXT NOT NULL,
    task TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

# Called once per finished batch: (positions in the pending list, answers, whether each failed).
SaveBatch = Callable[[Sequence[int], Sequence[Any], Sequence[bool]], None]

# Files of a checkpoint folder whose change changes the answers (weights, config, tokenizer).
_CHECKPOINT_FILES = ("*.json", "*.safetensors", "*.bin", "*.model", "*/*.json", "*/*.safetensors")


def stored_answer(text: Any, request_type: str) -> Any:
    """A stored answer as lmms-eval takes it (text for a generation, a (log-likelihood,
    is-greedy) pair for a likelihood), or None when the row holds anything else."""
    try:
        value = parse(text) if isinstance(text, str) else None
    except JsonProblem:
        return None
    if request_type == "loglikelihood":
        pair = isinstance(value, list) and len(value) == 2
        if pair and isinstance(value[0], int | float) and isinstance(value[1], bool):
            return (float(value[0]), value[1])
        return None
    return value if isinstance(value, str) else None


class ResumeStoreError(DragonflyEvalError, RuntimeError):
    """A resume store that cannot be read; the message names the file and the fix."""


def checkpoint_identity(pretrained: str) -> str:
    """A digest of the name, size and modification time of a local checkpoint's files; the
    name itself for a hub id or a built-in model (whose `revision` is keyed beside it)."""
    folder = Path(pretrained).expanduser()
    if not folder.is_dir():
        return pretrained
    files = sorted({p for pattern in _CHECKPOINT_FILES for p in folder.glob(pattern)})
    stats = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def request_key(
    model_id: str, request_type: str, task: str, split: str, doc_id: Any, *parts: Any
) -> str:
    """A stable key for one request; `parts` are the prompt and what else decides the answer."""
    payload = json.dumps(
        [model_id, request_type, task, split, str(doc_id), *parts],
        sort_keys=True,
        ensure_ascii=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ResumeStore:
    """SQLite table of finished answers by request key, written batch by batch."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = uuid.uuid4().hex
        self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.commit()
            check_store(self._db, self.path)
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise damaged(self.path, err) from err

    def lookup(self, keys: Sequence[str]) -> dict[str, Any]:
        """Stored answers among `keys` (a loglikelihood pair comes back as a tuple)."""
        found: dict[str, Any] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, request_type, answer FROM answers WHERE key IN ({marks})", chunk
            ).fetchall()
            for key, request_type, answer in rows:
                value = stored_answer(answer, request_type)
                if value is None:  # answered again rather than handed to lmms-eval
                    logger.warning(f"{self.path}: the stored answer of {key} is unreadable")
                    continue
                found[key] = value
        return found

    def save(self, rows: Sequence[tuple[str, str, str, Any, Any]]) -> None:
        """Store (key, request_type, task, doc_id, answer) rows in one committed transaction."""
        now = time.time()
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (key, rtype, task, str(doc_id), json.dumps(answer), self.run_id, now)
                    for key, rtype, task, doc_id, answer in rows
                ],
            )

    def close(self) -> None:
        self._db.close()


def count_answers(path: str | Path) -> int:
    """How many answers a store file holds, read without writing to it; 0 for no file, or one
    that is not a readable store."""
    path = Path(path)
    if not path.is_file():
        return 0
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        (count,) = db.execute("SELECT COUNT(*) FROM answers").fetchone()
    except sqlite3.Error:
        return 0
    finally:
        db.close()
    return int(count)


def damaged(path: Path, err: Exception) -> ResumeStoreError:
    """The error for a store file SQLite cannot read."""
    return ResumeStoreError(
        f"resume store {path} is damaged ({err}): it was cut short or is not a resume store. "
        "Delete it (the run then starts afresh) or resume another run."
    )


def sqlite_problem(db: sqlite3.Connection) -> str | None:
    """What SQLite finds wrong with a database file (a cut-short page, ...), or None."""
    try:
        (verdict,) = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as err:
        return str(err)
    return None if verdict == "ok" else verdict


def check_store(db: sqlite3.Connection, path: Path) -> None:
    """Raise `ResumeStoreError` unless SQLite finds the store file sound and its `answers`
    table is the one this module writes."""
    problem = sqlite_problem(db) or schema_problem(db)
    if problem:
        raise damaged(path, sqlite3.DatabaseError(problem))


def schema_problem(db: sqlite3.Connection) -> str | None:
    """How the `answers` table of `db` differs from `_SCHEMA`'s (columns, types, keys), or
    None. A valid SQLite file of another layout would otherwise fail only at the first lookup,
    after the model has loaded."""
    expected = sqlite3.connect(":memory:")
    try:
        expected.executescript(_SCHEMA)
        want = _columns(expected)
    finally:
        expected.close()
    found = _columns(db)
    if found == want:
        return None
    return f"its answers table has columns {_describe(found)}, expected {_describe(want)}"


def _columns(db: sqlite3.Connection) -> list[tuple[str, str, bool, bool]]:
    """(name, declared type, NOT NULL, part of the primary key) of each `answers` column."""
    rows = db.execute("PRAGMA table_info(answers)").fetchall()
    return [(name, kind.upper(), bool(notnull), bool(pk)) for _, name, kind, notnull, _, pk in rows]


def _describe(columns: list[tuple[str, str, bool, bool]], most: int = 10) -> str:
    shown = [
        f"{name[:40]} {kind[:20]}" + (" PRIMARY KEY" if pk else "") for name, kind, _, pk in columns
    ]
    return ", ".join(shown[:most]) + (f" and {len(shown) - most} more" if len(shown) > most else "")


def answer_with_store(
    store: ResumeStore | None,
    request_type: str,
    keys: Sequence[str],
    labels: Sequence[tuple[str, Any]],
    compute: Callable[[list[int], SaveBatch | None], list[Any]],
) -> list[Any]:
    """Answers for all requests: stored ones from `store`, the rest from `compute`.

    `compute(pending, save)` answers the requests at indices `pending` (in that order) and calls
    `save` after each batch; `labels` are (task, doc_id) per request, kept beside the answers.
    Without a store, `keys` may be empty and everything is computed.
    """
    if store is None:
        return compute(list(range(len(labels))), None)
    done = store.lookup(keys)
    pending = [i for i, key in enumerate(keys) if key not in done]
    logger.info(
        f"dragonfly resume: {len(keys) - len(pending)} of {len(keys)} {request_type} answers "
        f"found in {store.path}; computing {len(pending)}"
    )

    def save(positions: Sequence[int], answers: Sequence[Any], failed: Sequence[bool]) -> None:
        rows = []
        for pos, answer, bad in zip(positions, answers, failed, strict=True):
            if not bad:
                i = pending[pos]
                rows.append((keys[i], request_type, labels[i][0], labels[i][1], answer))
        store.save(rows)

    fresh = compute(pending, save) if pending else []
    out = [done.get(key) for key in keys]
    for i, answer in zip(pending, fresh, strict=True):
        out[i] = answer
    return out


def rank_path(path: str | Path, rank: int, world_size: int) -> Path:
    """Each process of a multi-GPU run writes its own file: `PATH` or `PATH.rank<r>`."""
    path = Path(path)
    return path if world_size <= 1 else path.with_name(f"{path.name}.rank{rank}")


class FailureLog:
    """Append-only JSON lines of failures, started empty."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def append(self, failure: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(failure, default=str) + "\n")


def read_failures(path: str | Path) -> list[dict[str, Any]]:
    """Failures logged at `path` and by the other ranks (`path.rank*`), in order."""
    path = Path(path)
    files = [path] if path.is_file() else []
    files += sorted(path.parent.glob(f"{path.name}.rank*"))
    failures = []
    for file in files:
        for line in file.read_text().splitlines():
            if line.strip():
                try:
                    failures.append(parse(line))
                except JsonProblem:  # a line cut short by a killed process
                    continue
    return failures


def failures_file_for(results_file: Path) -> Path:
    """`<date>_failures.json` beside `<date>_results.json`."""
    stem = results_file.name.removesuffix("_results.json")
    return results_file.with_name(f"{stem}_failures.json")


def write_failures(failures: list[dict[str, Any]], target: Path) -> None:
    """The failures as one JSON document."""
    target.write_text(json.dumps({"failures": failures, "count": len(failures)}, indent=2) + "\n")
