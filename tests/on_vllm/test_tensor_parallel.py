"""tensor_parallel_size=2 over two CPU ranks answers and scores as the one-process HF engine."""

from __future__ import annotations

import gc

import pytest

from tests.on_vllm.vllm_kit import NEEDS_VLLM, noise

pytestmark = [pytest.mark.slow, pytest.mark.vllm, NEEDS_VLLM]


def test_two_tensor_parallel_ranks_give_the_hf_engines_answers_and_scores(
    released_checkpoint, in_process_engine_env, monkeypatch
):
    from dragonfly_eval.engine import Engine, EngineSettings, GenRequest, GenSettings, ScoreRequest
    from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor
    from dragonfly_eval.vllm.engine import VllmEngine, VllmSettings

    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0|1")  # one core per rank
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    folder = released_checkpoint(2)
    settings = GenSettings(max_new_tokens=8)
    generate = [
        GenRequest("Compare them.", [noise(30), noise(31, (300, 100))], settings, "t", 0),
        GenRequest("What is it?", [noise(32)], settings, "t", 1),
        GenRequest("Say something.", [], settings, "t", 2),
    ]
    score = [
        ScoreRequest("What is it?", " a red circle", [noise(33)], "t", 0),
        ScoreRequest("Say yes.", "yes", [], "t", 1),
    ]
    hf = Engine(
        DragonflyForCausalLM.from_pretrained(folder),
        DragonflyProcessor.from_pretrained(folder),
        EngineSettings(progress=False),
    )
    vllm = VllmEngine(
        str(folder),
        VllmSettings(dtype="float32", enforce_eager=True, tensor_parallel_size=2, progress=False),
    )
    try:
        assert vllm.generate(generate) == hf.generate(generate)
        ours, theirs = vllm.score(score), hf.score(score)
        assert [g for _, g in ours] == [g for _, g in theirs]
        assert [x for x, _ in ours] == pytest.approx([x for x, _ in theirs], abs=1e-4)
    finally:
        vllm.close()
        del vllm
        gc.collect()
