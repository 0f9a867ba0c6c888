"""`dragonfly-eval diff A B`: which documents changed between two runs, task by task.

Both runs need sample logs (lmms-eval's --log_samples). Documents are paired by doc_id; a
document is *gained* when its score moved the better way, *lost* when it moved the worse way,
and *changed* when its answer differs with the same score (or the metric has no per-document
number, e.g. CIDEr).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.leaderboard.board.markdown import escape, markdown_table
from dragonfly_eval.leaderboard.board.table import MISSING, Cell
from dragonfly_eval.leaderboard.suite import Suite
from dragonfly_eval.lmms_files.results import ResultsError, read_run
from dragonfly_eval.lmms_files.samples import (
    SampleLog,
    SampleLogError,
    find_sample_logs,
    read_sample_log,
    results_file_of,
)

KINDS = ("lost", "gained", "changed")
DEFAULT_ROWS = 100


class DiffError(DragonflyEvalError):
    """Nothing to compare (a side without sample logs, no task in common) or an option the diff
    cannot use (exit 2)."""


@dataclass(frozen=True)
class DocChange:
    """One document whose answer or score differs between run A and run B."""

    doc_id: int
    kind: str
    question: str
    target: str
    answer_a: str
    answer_b: str
    score_a: float | None
    score_b: float | None
    media: tuple[str, ...] = ()

    @property
    def impact(self) -> float:
        """How much the document's score moved (0 when only its answer changed)."""
        if self.score_a is None or self.score_b is None:
            return 0.0
        return abs(self.score_b - self.score_a)


@dataclass(frozen=True)
class TaskDiff:
    """The changed documents of one task, most impact first."""

    task: str
    metric: str | None
    paired: int
    only_a: int
    only_b: int
    changes: tuple[DocChange, ...]

    def count(self, kind: str) -> int:
        """How many documents are `kind` (lost, gained or changed)."""
        return sum(1 for c in self.changes if c.kind == kind)


@dataclass(frozen=True)
class DiffReport:
    """Every task both runs logged, plus what could not be compared."""

    a: str
    b: str
    tasks: tuple[TaskDiff, ...]
    problems: tuple[str, ...]


def diff_runs(
    a: Path, b: Path, tasks: Sequence[str] | None = None, suite: Suite | None = None
) -> DiffReport:
    """Compare the sample logs under `a` and `b` (folders or single logs), task by task.
    `tasks` limits the comparison; `suite` says which metric is a task's headline."""
    logs_a, logs_b = _logs("A", a), _logs("B", b)
    problems = [f"{t}: only in A" for t in sorted(set(logs_a) - set(logs_b))]
    problems += [f"{t}: only in B" for t in sorted(set(logs_b) - set(logs_a))]
    names = sorted(set(logs_a) & set(logs_b))
    if tasks:
        problems += [f"{t}: no sample log on both sides" for t in tasks if t not in names]
        names = [t for t in names if t in tasks]
    if not names:
        raise DiffError(
            f"no task has a sample log in both {a} and {b}"
            + (f" ({'; '.join(problems)})" if problems else "")
        )
    diffs = []
    for task in names:
        try:
            log_a = read_sample_log(logs_a[task], task)
            log_b = read_sample_log(logs_b[task], task)
        except SampleLogError as err:
            problems.append(f"{task}: {err}")
            continue
        diffs.append(diff_task(log_a, log_b, _headlines(suite)))
    if not diffs:
        raise DiffError("no sample log could be read: " + "; ".join(problems))
    return DiffReport(str(a), str(b), tuple(diffs), tuple(problems))


def diff_task(a: SampleLog, b: SampleLog, headlines: Mapping[str, str] | None = None) -> TaskDiff:
    """The documents of one task whose score or answer differs between two logs."""
    metric = _metric(a, b, (headlines or {}).get(a.task))
    better = _higher_is_better(a, metric)
    common = sorted(set(a.records) & set(b.records))
    changes = []
    for doc in common:
        rec_a, rec_b = a.records[doc], b.records[doc]
        score_a, score_b = _score(rec_a, metric), _score(rec_b, metric)
        answer_a, answer_b = answer_text(rec_a), answer_text(rec_b)
        if score_a is not None and score_b is not None and score_a != score_b:
            kind = "gained" if (score_b > score_a) == better else "lost"
        elif answer_a != answer_b:
            kind = "changed"
        else:
            continue
        question = _question(rec_a)
        target = str(rec_a.get("target", ""))
        logged = rec_a.get("input_media")
        media = tuple(m for m in logged if isinstance(m, str)) if isinstance(logged, list) else ()
        changes.append(
            DocChange(doc, kind, question, target, answer_a, answer_b, score_a, score_b, media)
        )
    changes.sort(key=lambda c: (-c.impact, KINDS.index(c.kind), c.doc_id))
    only_a = len(set(a.records) - set(b.records))
    only_b = len(set(b.records) - set(a.records))
    return TaskDiff(a.task, metric, len(common), only_a, only_b, tuple(changes))


def answer_text(record: Mapping[str, Any]) -> str:
    """A document's answer as text: the filtered response (a list's items joined)."""
    answer = record.get("filtered_resps", "")
    while isinstance(answer, list) and len(answer) == 1:
        answer = answer[0]
    if isinstance(answer, str):
        return answer
    return json.dumps(answer, ensure_ascii=False, default=str)


def _logs(side: str, path: Path) -> dict[str, Path]:
    if not path.exists():
        raise DiffError(f"{side}: {path}: no such file or folder")
    logs = find_sample_logs(path)
    if not logs:
        raise DiffError(
            f"{side}: no sample logs (*_samples_<task>.jsonl) under {path}; run lmms-eval with "
            "--log_samples"
        )
    return logs


def _headlines(suite: Suite | None) -> dict[str, str]:
    """Each task's headline metric in the suite mapping (its name without the filter)."""
    if suite is None:
        return {}
    names: dict[str, str] = {}
    for bench in suite.benchmarks.values():
        for source in bench.sources:
            for task in source.headline.tasks:
                names.setdefault(task, source.headline.metric.partition(",")[0])
    return names


def _metric(a: SampleLog, b: SampleLog, headline: str | None) -> str | None:
    """The per-document number the diff scores by: the suite's headline metric if it is one,
    else the first metric both logs hold as a number."""
    candidates = ([headline] if headline else []) + a.metrics()
    for name in candidates:
        if name in b.metrics() and _numeric(a, name) and _numeric(b, name):
            return name
    return None


def _numeric(log: SampleLog, name: str) -> bool:
    return all(_score(rec, name) is not None for rec in log.records.values())


def _score(record: Mapping[str, Any], metric: str | None) -> float | None:
    value = record.get(metric) if metric else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def _higher_is_better(log: SampleLog, metric: str | None) -> bool:
    """From the results file beside the log (lmms-eval's `higher_is_better`); True if unknown,
    and when that file is missing or not a results file one can read (a FIFO, a link to
    /dev/zero, too large, not JSON)."""
    if metric is None:
        return True
    try:
        run = read_run(results_file_of(log.path))
    except ResultsError:
        return True
    return run.higher_is_better.get(log.task, {}).get(metric, True)


def _question(record: Mapping[str, Any]) -> str:
    """The document's question: its `question` field if logged, else the prompt (`input`)."""
    doc = record.get("doc")
    if isinstance(doc, dict) and isinstance(doc.get("question"), str):
        return doc["question"]
    prompt = record.get("input")
    return prompt if isinstance(prompt, str) else ""


def render_diff_markdown(report: DiffReport, max_rows: int = DEFAULT_ROWS) -> str:
    """Per task: the counts line and a table of the changed documents, as escaped markdown."""
    parts = [f"# {escape(report.a)} (A) vs {escape(report.b)} (B)"]
    for diff in report.tasks:
        parts.append(
            f"## {escape(diff.task)}" + (f" ({escape(diff.metric)})" if diff.metric else "")
        )
        parts.append(escape(counts_line(diff)))
        if diff.changes:
            header = ["doc_id", "change", "question", "target", "answer A", "answer B"]
            header += ["score A", "score B"]
            rows = [[Cell(t) for t in _row_texts(c)] for c in diff.changes[:max_rows]]
            parts.append(markdown_table(header, rows, numeric_from=6))
            if len(diff.changes) > max_rows:
                parts.append(f"… and {len(diff.changes) - max_rows} more (--max-rows).")
    if report.problems:
        parts.append("Not compared:\n\n" + "\n".join(f"- {escape(p)}" for p in report.problems))
    return "\n\n".join(parts) + "\n"


def counts_line(diff: TaskDiff) -> str:
    """How many documents were compared and how many were gained, lost or changed."""
    line = (
        f"{diff.paired} documents in both runs: {diff.count('gained')} gained, "
        f"{diff.count('lost')} lost, {diff.count('changed')} changed answers"
    )
    if diff.metric is None:
        line += " (no per-document score: answers compared)"
    if diff.only_a or diff.only_b:
        line += f"; {diff.only_a} only in A, {diff.only_b} only in B"
    return line + "."


def _row_texts(change: DocChange) -> list[str]:
    return [
        str(change.doc_id),
        change.kind,
        shorten(change.question),
        shorten(change.target),
        shorten(change.answer_a),
        shorten(change.answer_b),
        _score_text(change.score_a),
        _score_text(change.score_b),
    ]


def shorten(text: str, limit: int = 200) -> str:
    """Text cut to `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _score_text(score: float | None) -> str:
    return MISSING if score is None else f"{score:.4g}"
