"""The zoom ablation's table: the results of the same tasks run once per zoom setting.

Each setting runs (`runner.ablate`, with --log_samples) into its own folder,
OUTPUT/zoom_<setting>/. The table has one row per setting with its visual tokens per
image, one column per benchmark, each cell the score with its 95% interval (lmms-eval's
standard error x 1.96); under it, per benchmark, how many documents only the full zoom answered
correctly (a diff of the lowest setting's run against the full run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.leaderboard.board.markdown import escape, markdown_table
from dragonfly_eval.leaderboard.board.table import MISSING, Cell, Found, benchmark_source
from dragonfly_eval.leaderboard.diff.changes import diff_task
from dragonfly_eval.leaderboard.suite import Benchmark, Score, Suite
from dragonfly_eval.lmms_files.results import ModelResults, load_runs, merge_runs
from dragonfly_eval.lmms_files.samples import SampleLogError, read_sample_log, sample_log_path

# Visual positions per image (README, "model_args"): (v1, v2); v2 has no `select`.
VISUAL_TOKENS = {
    "select": (867, None),
    "full": (1479, 2098),
    "low+medium": (255, 730),
    "low": (51, 578),
}
_Z = 1.959963984540054  # two-sided 95% normal quantile


class AblateError(DragonflyEvalError):
    """Bad options, or results the ablation table cannot be built from (exit 2)."""


@dataclass(frozen=True)
class Ablation:
    """The results of each zoom setting (in the order given) and the benchmarks they scored."""

    zooms: tuple[str, ...]
    models: dict[str, ModelResults]
    benchmarks: tuple[Benchmark, ...]


def parse_zooms(raw: str) -> list[str]:
    """The --zoom list: known settings, each once, at least two."""
    zooms = [z.strip() for z in raw.split(",") if z.strip()]
    known = list(VISUAL_TOKENS)  # every zoom setting of v1 and v2
    unknown = [z for z in zooms if z not in known]
    if unknown:
        raise AblateError(
            f"unknown zoom setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    if len(set(zooms)) != len(zooms) or len(zooms) < 2:
        raise AblateError(f"--zoom needs at least two different settings, not {raw!r}")
    return zooms


def with_zoom(model_args: str, zoom: str) -> str:
    """model_args with `zoom=` set; AblateError when model_args already sets it."""
    keys = [pair.partition("=")[0].strip() for pair in model_args.split(",")]
    if "zoom" in keys:
        raise AblateError("--model_args must not set zoom: --zoom chooses it per run")
    return f"{model_args},zoom={zoom}" if model_args else f"zoom={zoom}"


def zoom_folder(output_path: Path, zoom: str) -> Path:
    """Where one setting's results go."""
    return output_path / f"zoom_{zoom.replace('+', '_')}"


def build_ablation(written: dict[str, list[Path]], suite: Suite) -> Ablation:
    """Read each setting's results; the benchmarks are those some setting scored."""
    models = {}
    for zoom, files in written.items():
        merged = merge_runs(load_runs(files).runs)
        if len(merged) != 1:
            raise AblateError(f"zoom={zoom}: expected the results of one model, got {len(merged)}")
        models[zoom] = merged[0]
    benchmarks = tuple(
        b
        for b in suite.select(["all"])
        if any(benchmark_source(m, b) is not None for m in models.values())
    )
    if not benchmarks:
        folders = ", ".join(str(files[0].parent) for files in written.values() if files)
        raise AblateError(
            "no run holds a headline score of a benchmark in the suite mapping "
            f"(dragonfly_eval/data/suite.yaml); the results are in {folders}"
        )
    return Ablation(tuple(written), models, benchmarks)


def render_ablation_markdown(ablation: Ablation) -> str:
    """The ablation table and the per-benchmark count of documents only full zoom got right."""
    header = ["Zoom", "Positions per image (v1 / v2)"] + [b.name for b in ablation.benchmarks]
    rows = []
    for zoom in ablation.zooms:
        cells = [zoom, tokens_text(zoom)]
        cells += [cell_text(ablation.models[zoom], b) for b in ablation.benchmarks]
        rows.append([Cell(t) for t in cells])
    parts = [markdown_table(header, rows, numeric_from=1)]
    parts.append(
        "Cells: score (95% interval: lmms-eval's standard error x 1.96; – when it has none)."
    )
    lines = full_only_lines(ablation)
    if lines:
        parts.append("\n".join(f"- {escape(line)}" for line in lines))
    return "\n\n".join(parts) + "\n"


def tokens_text(zoom: str) -> str:
    """A setting's positions per image (the sequence positions its image blocks take) for v1 and v2
    checkpoints."""
    v1, v2 = VISUAL_TOKENS[zoom]
    return " / ".join(MISSING if n is None else str(n) for n in (v1, v2))


def cell_text(model: ModelResults, bench: Benchmark) -> str:
    """`score ± half-width` of one benchmark for one setting, or – without a score."""
    found = benchmark_source(model, bench)
    if found is None:
        return MISSING
    source, score = found
    half = half_width(source.headline, score)
    return f"{score.value:.1f}" + (f" ± {half:.1f}" if half is not None else " ± –")


def half_width(score: Score, found: Found) -> float | None:
    """Half the 95% interval of a headline score from the runs' `_stderr` values; None when a
    task has none (lmms-eval writes "N/A" for corpus-level metrics)."""
    errors = []
    for task, run in zip(score.tasks, found.runs, strict=True):
        value = run.stderrs.get(task, {}).get(score.metric)  # finite numbers only
        if value is None:
            return None
        errors.append(value)
    # the headline is the mean of its tasks: independent errors add in quadrature
    return _Z * math.sqrt(sum(e * e for e in errors)) / len(errors) * score.scale


def full_only_lines(ablation: Ablation) -> list[str]:
    """Per benchmark: documents the full zoom answered correctly and the lowest setting not."""
    if "full" not in ablation.zooms:
        return []
    low = next(z for z in ablation.zooms if z != "full")
    lines = []
    for bench in ablation.benchmarks:
        low_found = benchmark_source(ablation.models[low], bench)
        full_found = benchmark_source(ablation.models["full"], bench)
        if low_found is None or full_found is None:
            continue
        try:
            gained, paired = _full_only(full_found[0].headline, low_found[1], full_found[1])
        except SampleLogError as err:
            lines.append(f"{bench.name}: no per-document comparison ({err})")
            continue
        if gained is None:
            lines.append(
                f"{bench.name}: no per-document score to compare (a corpus-level metric); "
                f"{paired} documents in both runs"
            )
            continue
        lines.append(
            f"{bench.name}: {gained} of {paired} documents scored better with zoom=full than "
            f"with zoom={low} (answered correctly only with the full zoom, for 0/1 metrics)"
        )
    return lines


def _full_only(score: Score, low: Found, full: Found) -> tuple[int | None, int]:
    """Documents that scored better with full zoom, and documents paired; None for the first
    when the metric has no per-document number (CIDEr, POPE F1)."""
    gained: int | None = 0
    paired = 0
    metric = score.metric.partition(",")[0]
    for task, low_run, full_run in zip(low.tasks, low.runs, full.runs, strict=True):
        a = read_sample_log(sample_log_path(low_run.path, task), task)
        b = read_sample_log(sample_log_path(full_run.path, task), task)
        diff = diff_task(a, b, {task: metric})
        paired += diff.paired
        if diff.metric != metric:
            gained = None
        elif gained is not None:
            gained += diff.count("gained")
    return gained, paired
