"""`zoom` reaches vLLM's side (processor and model) as it reaches the HF engine's."""

from __future__ import annotations

import gc

import pytest

from tests.on_vllm.vllm_kit import NEEDS_VLLM, noise

pytestmark = [pytest.mark.slow, pytest.mark.vllm, NEEDS_VLLM]


def test_zoom_low_gives_the_hf_engines_one_crop_layout_and_answers(
    released_checkpoint, in_process_engine_env
):
    from vllm import SamplingParams, TokensPrompt

    from dragonfly_eval.engine import Engine, EngineSettings, GenRequest, GenSettings
    from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor
    from dragonfly_eval.vllm.engine import VllmEngine, VllmSettings

    folder = released_checkpoint(2)
    processor = DragonflyProcessor.from_pretrained(folder, zoom="low")
    hf = Engine(
        DragonflyForCausalLM.from_pretrained(folder, zoom="low"),
        processor,
        EngineSettings(progress=False),
    )
    vllm = VllmEngine(
        str(folder),
        VllmSettings(dtype="float32", enforce_eager=True, zoom="low", progress=False),
    )
    try:
        text = processor.text_ids("Which?")
        prompt = TokensPrompt(
            prompt_token_ids=[processor.placeholder_id] + text,
            multi_modal_data={"image": [noise(0)]},
        )
        (out,) = vllm.llm.generate([prompt], SamplingParams(max_tokens=1), use_tqdm=False)
        assert len(out.prompt_token_ids) == 577 + 1 + len(text)  # the low crop only
        requests = [GenRequest("What is it?", [noise(i)], GenSettings(8), "t", i) for i in (1, 2)]
        assert vllm.generate(requests) == hf.generate(requests)
    finally:
        vllm.close()
        del vllm
        gc.collect()
