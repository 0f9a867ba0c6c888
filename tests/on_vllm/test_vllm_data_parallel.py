"""Data parallel on vLLM, through lmms-eval's CLI on the CPU: two engines, each on one core,
either one per process under torchrun or two in one process (`data_parallel_size=2`), answer
every document as one engine in one process does. The fast tests below cover the placement
rules, which are checked before any engine starts."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dragonfly_eval.harness.model import ProcessLayout
from dragonfly_eval.harness.vllm_model import DragonflyVllm, data_parallel_placement
from dragonfly_eval.paths import task_yaml_dir
from dragonfly_eval.vllm.engine import Placement, replica_environments
from tests.on_vllm.vllm_kit import NEEDS_VLLM

GENERATION, LIKELIHOOD = "dragonfly_mini_chart", "dragonfly_mini_mc_ppl"
TASKS = (GENERATION, LIKELIHOOD)
LIMIT = 3  # an uneven split under two processes: documents 0, 2 and 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(
    out: Path, env: dict, folder: Path, extra_args: str = "", launcher: tuple[str, ...] = ()
) -> str:
    """lmms-eval's CLI with dragonfly_vllm on both tasks; its log."""
    model_args = (
        f"pretrained={folder},dtype=float32,enforce_eager=true,"
        f"resume_store={out / 'resume.sqlite'}{extra_args}"
    )
    done = subprocess.run(
        [
            sys.executable,
            *launcher,
            "-m",
            "lmms_eval",
            "--model",
            "dragonfly_vllm",
            "--model_args",
            model_args,
            "--tasks",
            ",".join(TASKS),
            "--include_path",
            str(task_yaml_dir()),
            "--limit",
            str(LIMIT),
            "--output_path",
            str(out),
            "--log_samples",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=out.parent,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout + done.stderr


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


def _assert_same_answers(got: Path, want: Path) -> None:
    """Every document once, with the same answer (generation) and the same scores and choice
    (likelihood) as the reference run."""
    for task in TASKS:
        ours, theirs = _samples(got, task), _samples(want, task)
        assert sorted(ours) == sorted(theirs) == list(range(LIMIT)), task
        for doc_id, row in theirs.items():
            if task == GENERATION:
                assert ours[doc_id]["filtered_resps"] == row["filtered_resps"], doc_id
                assert row["filtered_resps"][0], doc_id  # random weights never answer nothing
            else:
                losses = [float(x) for x, _ in ours[doc_id]["filtered_resps"]]
                expected = [float(x) for x, _ in row["filtered_resps"]]
                assert losses == pytest.approx(expected, abs=1e-5), doc_id
                assert ours[doc_id]["acc"] == row["acc"], doc_id


@pytest.fixture(scope="module")
def checkpoint(released_checkpoint) -> Path:
    return released_checkpoint(2)


@pytest.fixture(scope="module")
def one_engine(tmp_path_factory, engine_env, checkpoint) -> Path:
    """The reference: one engine in one process."""
    out = tmp_path_factory.mktemp("one-engine") / "out"
    _run(out, engine_env, checkpoint)
    return out


def _one_core_each(engine_env: dict) -> dict:
    """Two engines on the 2 cores: one CPU list per engine, one OpenMP thread each."""
    return {**engine_env, "VLLM_CPU_OMP_THREADS_BIND": "0|1", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.vllm
@NEEDS_VLLM
def test_two_processes_under_torchrun_answer_their_shares_as_one_engine(
    tmp_path, engine_env, checkpoint, one_engine
):
    out = tmp_path / "out"
    launcher = (
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
    )
    logs = _run(out, _one_core_each(engine_env), checkpoint, launcher=launcher)

    for rank in range(2):
        assert f"dragonfly_vllm: data parallel, rank {rank} of 2" in logs
    # lmms-eval gives rank r the documents r, r + 2, ...; each process answered its own.
    shares = sorted(_writers(out), key=lambda w: min(w[GENERATION]))
    assert [share[GENERATION] for share in shares] == [{0, 2}, {1}]
    assert [share[LIKELIHOOD] for share in shares] == [{0, 2}, {1}]
    _assert_same_answers(out, one_engine)


@pytest.mark.slow
@pytest.mark.vllm
@NEEDS_VLLM
def test_two_engines_in_one_process_answer_as_one_engine(
    tmp_path, engine_env, checkpoint, one_engine
):
    out = tmp_path / "out"
    logs = _run(out, _one_core_each(engine_env), checkpoint, ",data_parallel_size=2")

    # each engine was started on its own core, and each answered its share of every call
    for slot, core in ((1, 0), (2, 1)):
        assert (
            f"engine {slot} of 2 on this machine with {{'VLLM_CPU_OMP_THREADS_BIND': '{core}'}}"
            in logs
        )
    calls = re.findall(r"(\d+) requests over 2 engines: \[(\d+), (\d+)\]", logs)
    assert len(calls) >= 2  # the generation call and the likelihood call
    assert ("3", "1", "2") in calls
    for total, first, second in calls:
        assert int(first) > 0 and int(second) > 0 and int(first) + int(second) == int(total)
    _assert_same_answers(out, one_engine)


def test_under_a_launcher_each_process_is_one_engine_in_its_local_slot():
    two_of_four = ProcessLayout(rank=3, world_size=4, local_rank=1, local_world_size=2)
    assert data_parallel_placement(None, two_of_four) == Placement(1, 1, 2)
    assert data_parallel_placement(4, two_of_four) == Placement(1, 1, 2)  # as --model vllm
    assert data_parallel_placement(3, ProcessLayout()) == Placement(0, 3, 3)
    with pytest.raises(ValueError, match="data_parallel_size=2 under a launcher of 4"):
        data_parallel_placement(2, two_of_four)


def test_a_bad_data_parallel_size_under_a_launcher_is_refused_before_loading(tmp_path, monkeypatch):
    for name, value in (("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="each process is one data-parallel engine"):
        DragonflyVllm(pretrained=str(tmp_path / "never-loaded"), data_parallel_size=3)


def test_each_engine_takes_its_run_of_cpu_lists_or_gpus():
    both = Placement(0, 2, 2)
    bind = {"VLLM_CPU_OMP_THREADS_BIND": "0-3|4-7|8-11|12-15"}
    assert replica_environments(both, 2, on_cpu=True, environ=bind) == [
        {"VLLM_CPU_OMP_THREADS_BIND": "0-3|4-7"},
        {"VLLM_CPU_OMP_THREADS_BIND": "8-11|12-15"},
    ]
    second = Placement(1, 1, 2)  # a torchrun rank's own slot
    assert replica_environments(second, 1, True, {"VLLM_CPU_OMP_THREADS_BIND": "0|1"}) == [
        {"VLLM_CPU_OMP_THREADS_BIND": "1"}
    ]
    assert replica_environments(both, 1, True, {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}) == [{}, {}]
    assert replica_environments(both, 2, False, {}, gpu_count=lambda: 4) == [
        {"CUDA_VISIBLE_DEVICES": "0,1"},
        {"CUDA_VISIBLE_DEVICES": "2,3"},
    ]
    assert replica_environments(second, 1, False, {"CUDA_VISIBLE_DEVICES": "4,6"}) == [
        {"CUDA_VISIBLE_DEVICES": "6"}
    ]
    alone = {"VLLM_CPU_OMP_THREADS_BIND": "0|1", "CUDA_VISIBLE_DEVICES": "3"}
    assert replica_environments(Placement(), 2, True, alone) == [{}]  # the machine's only one


@pytest.mark.parametrize(
    ("environ", "on_cpu", "error"),
    [
        ({}, True, "auto binding would put every engine on the same cores"),
        ({"VLLM_CPU_OMP_THREADS_BIND": "0|1"}, True, "need 4 CPU lists"),
        ({"CUDA_VISIBLE_DEVICES": "0,1,2"}, False, "need 4 GPUs on this machine, 3 visible"),
    ],
)
def test_a_machine_that_cannot_host_every_engine_is_refused(environ, on_cpu, error):
    with pytest.raises(ValueError, match=error):
        replica_environments(Placement(0, 2, 2), 2, on_cpu, environ, gpu_count=lambda: 0)
