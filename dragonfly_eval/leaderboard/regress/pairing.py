"""What the gate pairs: the models of the two sides, and the documents of two sample logs (same
doc_id and the same document), with the differences that make two runs not comparable."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dragonfly_eval.leaderboard.regress.verdict import RegressError
from dragonfly_eval.lmms_files.results import ModelResults, Run
from dragonfly_eval.lmms_files.samples import DOCUMENT_FIELDS, MetricLog


@dataclass(frozen=True)
class ModelPairs:
    """The (baseline, current) rows compared, and the rows of one side only."""

    pairs: tuple[tuple[ModelResults, ModelResults], ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentPairs:
    """The positions in each log of the documents both scored (same doc_id, same document);
    `mismatch` says which differ, `warning` that the logs could not tell documents apart."""

    base_at: np.ndarray  # int [n]
    cur_at: np.ndarray  # int [n]
    mismatch: str | None = None
    warning: str | None = None


def pair_models(base: list[ModelResults], cur: list[ModelResults]) -> ModelPairs:
    """One model on each side: those two, whatever their names. Several: models matched by
    name; RegressError when no name is on both sides."""
    if len(base) == 1 and len(cur) == 1:
        return ModelPairs(((base[0], cur[0]),))
    cur_by_name = {m.model: m for m in cur}
    pairs = tuple((b, cur_by_name[b.model]) for b in base if b.model in cur_by_name)
    if not pairs:
        raise RegressError(
            "no model in common: baseline has "
            f"{', '.join(m.model for m in base)}; current has {', '.join(m.model for m in cur)}"
        )
    paired = {b.model for b, _ in pairs}
    warnings = [
        f"baseline model {m.model} has no current run" for m in base if m.model not in paired
    ]
    warnings += [f"current model {m.model} has no baseline" for m in cur if m.model not in paired]
    return ModelPairs(pairs, tuple(warnings))


def prompt_mismatch(label: str, task: str, base: Run, cur: Run) -> str | None:
    """How the prompt settings of two runs of a task differ, or None when they are the same."""
    differ = [
        f"{key} {base.prompt.get(key)!r} vs {cur.prompt.get(key)!r}"
        for key in base.prompt
        if base.prompt.get(key) != cur.prompt.get(key)
    ]
    if not differ:
        return None
    return f"{label}: {task} ran with different prompt settings: " + ", ".join(differ)


def pair_documents(label: str, base: MetricLog, cur: MetricLog) -> DocumentPairs:
    """The doc_ids both logs hold with the same document (doc_hash, doc, target and input, where
    logged). lmms-eval 0.7.3 hashes `null` for every document, so the other fields are what can
    tell a changed dataset."""
    common, b_at, c_at = np.intersect1d(
        base.doc_ids, cur.doc_ids, assume_unique=True, return_indices=True
    )
    only_base = np.setdiff1d(base.doc_ids, cur.doc_ids, assume_unique=True)
    only_cur = np.setdiff1d(cur.doc_ids, base.doc_ids, assume_unique=True)
    differ = base.digests[b_at] != cur.digests[c_at]  # [common, field]
    problems = []
    if len(only_base) or len(only_cur):
        first = int((only_base if len(only_base) else only_cur)[0])
        problems.append(
            f"{len(only_base)} document(s) only in the baseline, {len(only_cur)} only in the "
            f"current run (e.g. doc_id {first})"
        )
    for column, key in enumerate(DOCUMENT_FIELDS):
        docs = common[differ[:, column]]
        if len(docs):
            problems.append(
                f"{len(docs)} document(s) with a different {key} (the dataset or its prompts "
                f"changed; e.g. doc_id {int(docs[0])})"
            )
    warning = None
    if not base.telling[b_at].any() or not cur.telling[c_at].any():
        warning = (
            f"{label}: {base.task}: could not check that both sides scored the same documents "
            "(the sample logs hold no target, input or doc, and a doc_hash of null)"
        )
    same = ~differ.any(axis=1)
    return DocumentPairs(
        b_at[same],
        c_at[same],
        f"{label}: {base.task}: " + "; ".join(problems) if problems else None,
        warning,
    )
