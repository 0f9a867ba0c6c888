"""The vLLM engine and the plugin's model, in process, on a random released-format v2
checkpoint: the token layout, several images, stop strings, scores, and requests that fail.
One engine for the module (each start costs ~17 s and ~2.3 GB)."""

from __future__ import annotations

import gc

import pytest
from PIL import Image

from tests.on_vllm.vllm_kit import NEEDS_VLLM, noise

pytestmark = [pytest.mark.slow, pytest.mark.vllm, NEEDS_VLLM]
POSITIONS_PER_IMAGE = 2098  # v2 `full`: 577 + 1, then 40 x (37 + 1)


@pytest.fixture(scope="module")
def engines(released_checkpoint, in_process_engine_env):
    """(HF engine, vLLM engine) over the same checkpoint."""
    from dragonfly_eval.engine import Engine, EngineSettings
    from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor
    from dragonfly_eval.vllm.engine import VllmEngine, VllmSettings

    folder = released_checkpoint(2)
    hf = Engine(
        DragonflyForCausalLM.from_pretrained(folder),
        DragonflyProcessor.from_pretrained(folder),
        EngineSettings(progress=False),
    )
    vllm = VllmEngine(
        str(folder), VllmSettings(dtype="float32", enforce_eager=True, progress=False)
    )
    yield hf, vllm
    vllm.close()
    del vllm
    gc.collect()


def test_each_image_placeholder_becomes_the_hf_processors_block_before_the_text(engines):
    from vllm import SamplingParams, TokensPrompt

    hf, vllm = engines
    processor = hf.processor
    text = processor.text_ids("<|start_header_id|>user<|end_header_id|>\n\nWhich?<|eot_id|>")
    prompt = TokensPrompt(
        prompt_token_ids=[processor.placeholder_id] * 2 + text,
        multi_modal_data={"image": [noise(0), noise(1, (90, 300))]},
    )
    (out,) = vllm.llm.generate([prompt], SamplingParams(max_tokens=1), use_tqdm=False)
    expected = processor.layout_ids([text], [2])["input_ids"][0].tolist()
    assert out.prompt_token_ids == expected
    assert len(expected) == 2 * POSITIONS_PER_IMAGE + len(text)
    assert out.prompt_token_ids[2 * POSITIONS_PER_IMAGE] == processor.tokenizer.bos_token_id


def test_answers_equal_the_hf_engines_for_two_images_one_and_none(engines):
    from dragonfly_eval.engine import GenRequest, GenSettings

    hf, vllm = engines
    settings = GenSettings(max_new_tokens=10)
    requests = [
        GenRequest("Compare them.", [noise(2), noise(3, (400, 120))], settings, "t", 0),
        GenRequest("What is it?", [noise(4)], settings, "t", 1),
        GenRequest("Say something.", [], settings, "t", 2),
        GenRequest("What is it?", lambda: [noise(5)], settings, "t", 3),  # read when prepared
    ]
    answers = vllm.generate(requests)
    assert answers == hf.generate(requests)
    assert all(answers) and len(set(answers)) == len(answers)


def test_a_stop_string_cuts_the_answer_as_the_hf_engine_cuts_it(engines):
    from dragonfly_eval.engine import GenRequest, GenSettings

    hf, vllm = engines
    (free,) = hf.generate([GenRequest("What is it?", [noise(6)], GenSettings(12), "t", 0)])
    stop = free[len(free) // 2 :][:2]  # two characters from the middle of the answer
    request = GenRequest("What is it?", [noise(6)], GenSettings(12, until=(stop,)), "t", 0)
    (cut,) = vllm.generate([request])
    assert cut == hf.generate([request])[0]
    assert stop not in cut and len(cut) < len(free)


def test_scores_equal_the_hf_engines_mean_nll_and_greedy_flags(engines):
    from dragonfly_eval.engine import ScoreRequest

    hf, vllm = engines
    requests = [
        ScoreRequest("What is it?", " a red circle", [noise(7)], "t", 0),
        ScoreRequest("Which?", "B", [noise(8), noise(9)], "t", 1),
        ScoreRequest("Say yes.", "yes", [], "t", 2),
    ]
    ours, theirs = vllm.score(requests), hf.score(requests)
    assert [g for _, g in ours] == [g for _, g in theirs]
    assert [loss for loss, _ in ours] == pytest.approx([loss for loss, _ in theirs], abs=1e-4)
    assert len({loss for loss, _ in ours}) == len(requests)


def test_a_failing_image_or_setting_fails_only_its_request_with_the_reason(engines):
    from dragonfly_eval.engine import GenRequest, GenSettings

    hf, vllm = engines
    settings = GenSettings(max_new_tokens=6)

    def unreadable():
        raise OSError("image file is truncated")

    requests = [
        GenRequest("What is it?", [noise(10)], settings, "bad", 100),
        GenRequest("What is it?", unreadable, settings, "bad", 101),
        GenRequest("What is it?", [Image.new("RGB", (0, 0))], settings, "bad", 102),
        GenRequest("What is it?", [noise(11)], GenSettings(6, num_beams=2), "bad", 103),
        GenRequest("Say something.", [], settings, "bad", 104),
    ]
    answers = vllm.generate(requests)
    expected = hf.generate([requests[0], requests[4]])
    assert answers == [expected[0], "", "", "", expected[1]]
    reasons = {f["doc_id"]: f["reason"] for f in vllm.failures if f["task"] == "bad"}
    assert sorted(reasons) == [101, 102, 103]
    assert "truncated" in reasons[101]
    assert "num_beams=2" in reasons[103] and "--model dragonfly" in reasons[103]
