"""Data parallel on the CPU: the mini suite's generation and likelihood tasks under two processes
(torchrun, and accelerate launch with its machine options) against one process.

Each launcher runs the same lmms-eval command line, with docs/evaluating.md's multi-GPU commands'
options and device=cpu. Each process must answer its own share of the documents (seen in the
shared resume store, where every process writes under its own run id, and in the per-rank
failure logs), and the merged results and sample logs must equal the one-process run's. The
fast tests below cover how a process picks its device.
"""

from __future__ import annotations

import json
import math
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dragonfly_eval.harness.model import Dragonfly, ProcessLayout, process_layout, resolve_device
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.runner.report import read_failures

TASKS = ("dragonfly_mini_vqa", "dragonfly_mini_mc_ppl")
LIMIT = 7  # an uneven split, 4 + 3 documents: lmms-eval pads the shorter rank's requests
PROCESSES = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lmms_eval_args(out: Path) -> list[str]:
    """`-m lmms_eval ...` as docs/evaluating.md's data-parallel commands give it, on the CPU."""
    model_args = (
        f"pretrained=dragonfly-tiny,device=cpu,batch_size=2,"
        f"resume_store={out / 'resume.sqlite'},failure_report={out / 'failures.jsonl'}"
    )
    return [
        "-m",
        "lmms_eval",
        "--model",
        "dragonfly",
        "--model_args",
        model_args,
        "--tasks",
        ",".join(TASKS),
        "--include_path",
        str(task_yaml_dir() / "mini"),
        "--limit",
        str(LIMIT),
        "--output_path",
        str(out),
        "--log_samples",
    ]


def _launcher(name: str) -> list[str]:
    """The launcher's command line before `-m lmms_eval` (the module form of its script)."""
    port = str(_free_port())
    if name == "torchrun":
        return [
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(PROCESSES),
            "--master_port",
            port,
        ]
    return [
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(PROCESSES),
        "--num_machines",
        "1",
        "--machine_rank",
        "0",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        port,
    ]


def _run(out: Path, env: dict[str, str], launcher: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, *launcher, *_lmms_eval_args(out)],
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def _results(out: Path) -> dict:
    (found,) = out.rglob("[0-9]*_results.json")
    return json.loads(found.read_text())


def _samples(out: Path, task: str) -> dict[int, dict]:
    (found,) = out.rglob(f"*_samples_{task}.jsonl")
    rows = [json.loads(line) for line in found.read_text().splitlines() if line.strip()]
    by_doc = {row["doc_id"]: row for row in rows}
    assert len(by_doc) == len(rows), f"{task}: a document was logged twice"
    return by_doc


def _writers(out: Path) -> list[dict[str, set[int]]]:
    """Per process (resume-store run id): the doc_ids it answered, by task."""
    with sqlite3.connect(out / "resume.sqlite") as db:
        rows = db.execute("SELECT run_id, task, doc_id FROM answers").fetchall()
    writers: dict[str, dict[str, set[int]]] = {}
    for run_id, task, doc_id in rows:
        writers.setdefault(run_id, {}).setdefault(task, set()).add(int(doc_id))
    return list(writers.values())


def _same_number(a, b) -> bool:
    """Equal metrics; a mean over documents gathered in another order may differ in the last
    bits."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    return a == b


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, offline_env) -> Path:
    """The reference: the same command in one process."""
    out = tmp_path_factory.mktemp("one-process")
    _run(out, offline_env, [])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_share_the_documents_and_merge_to_the_one_process_results(
    launcher, tmp_path, offline_env, one_process
):
    out = tmp_path / "out"
    done = _run(out, offline_env, _launcher(launcher))

    # Each process knows its rank: one failure log per rank, which the report reads together.
    for rank in range(PROCESSES):
        assert (out / f"failures.jsonl.rank{rank}").is_file()
    assert not (out / "failures.jsonl").exists()
    assert read_failures(out / "failures.jsonl") == []
    logs = done.stdout + done.stderr
    for rank in range(PROCESSES):
        assert f"dragonfly: data parallel, rank {rank} of {PROCESSES} on cpu" in logs

    # lmms-eval gives rank r the documents r, r + 2, ...; each process answered its own.
    shares = sorted(_writers(out), key=lambda w: min(w[TASKS[0]]))
    assert len(shares) == PROCESSES
    for rank, share in enumerate(shares):
        for task in TASKS:
            assert share[task] == set(range(rank, LIMIT, PROCESSES)), (rank, task)

    merged, reference = _results(out), _results(one_process)
    for task in TASKS:
        assert merged["n-samples"][task] == reference["n-samples"][task]
        got, want = merged["results"][task], reference["results"][task]
        assert got.keys() == want.keys()
        for key in want:
            assert _same_number(got[key], want[key]), (task, key, got[key], want[key])
        # Every document once, with the one-process run's record (answers, scores, target).
        got_samples, want_samples = _samples(out, task), _samples(one_process, task)
        assert sorted(got_samples) == list(range(LIMIT))
        assert got_samples == want_samples


@pytest.fixture
def two_gpus(monkeypatch) -> None:
    """A machine that looks as if it had two GPUs (only device selection is exercised)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_without_a_process_group_the_layout_comes_from_the_launcher_variables(monkeypatch):
    assert not torch.distributed.is_initialized()
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert process_layout() == ProcessLayout(rank=0, world_size=1, local_rank=0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert process_layout() == ProcessLayout(3, world_size=4, local_rank=1, local_world_size=4)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two machines of two processes
    assert process_layout() == ProcessLayout(3, world_size=4, local_rank=1, local_world_size=2)


def test_each_process_takes_the_gpu_of_its_local_rank(two_gpus):
    second = ProcessLayout(rank=3, world_size=4, local_rank=1)
    assert resolve_device("auto", second) == torch.device("cuda", 1)
    assert resolve_device("cuda", second) == torch.device("cuda", 1)
    assert resolve_device("cpu", second) == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # one process: as given


def test_several_processes_on_one_named_gpu_are_refused(two_gpus):
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES"):
        resolve_device("cuda:0", ProcessLayout(rank=1, world_size=2, local_rank=1))


def test_a_process_whose_local_rank_has_no_gpu_is_refused(two_gpus):
    with pytest.raises(ValueError, match="2 visible"):
        resolve_device("cuda", ProcessLayout(rank=2, world_size=3, local_rank=2))


def test_device_map_is_refused_in_a_data_parallel_run_before_loading(monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(ValueError, match="drop device_map"):
        Dragonfly(pretrained=str(tmp_path / "never-loaded"), device="cpu", device_map="auto")
