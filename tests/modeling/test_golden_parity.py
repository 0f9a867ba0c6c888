"""Golden parity: the released call shape reproduces the reference implementation's outputs.

Every expected value comes from the fixtures' golden.json (see tests/conftest.py), so the same
tests check any checkpoint + image set in that format.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from dragonfly_eval import DragonflyConfig, DragonflyForCausalLM  # registers the Auto classes

GENERATE_MAX_NEW_TOKENS = 8
EOT_TOKEN = "<|eot_id|>"


class CaseRunner:
    """Runs each golden case through the drop-in API once; tests read the parts they check.

    Only the latest case is kept (a v2 case's pixels alone are 55 MB); the tests of one case
    run together (see the module-scoped parametrization in conftest.py).
    """

    def __init__(self, load_pair) -> None:
        self.load_pair = load_pair
        self.key: tuple[str, int] | None = None
        self.slot: dict[str, Any] = {}

    def pair(self, case):
        return self.load_pair(case.golden.checkpoint)

    def _slot(self, case) -> dict[str, Any]:
        key = (case.golden.name, case.index)
        if key != self.key:
            self.key, self.slot = key, {}
        return self.slot

    def inputs(self, case) -> dict[str, Any]:
        slot = self._slot(case)
        if "inputs" not in slot:
            _, processor = self.pair(case)
            slot["inputs"] = processor(
                text=[case.data["prompt"]],
                images=[case.image],
                max_length=4096,
                return_tensors="pt",
                is_generate=True,
            )
        return slot["inputs"]

    def logits(self, case) -> torch.Tensor:
        slot = self._slot(case)
        if "logits" not in slot:
            model, _ = self.pair(case)
            with torch.no_grad():
                slot["logits"] = model(**self.inputs(case)).logits[0]  # [L, V]
        return slot["logits"]

    def greedy(self, case) -> list[int]:
        slot = self._slot(case)
        if "greedy" not in slot:
            model, processor = self.pair(case)
            inputs = self.inputs(case)
            out = model.generate(
                **inputs,
                max_new_tokens=GENERATE_MAX_NEW_TOKENS,
                eos_token_id=eot_id(processor),
                do_sample=False,
            )
            slot["greedy_full"] = out[0].tolist()
            slot["greedy"] = out[0, inputs["input_ids"].shape[1] :].tolist()
        return slot["greedy"]

    def continuation(self, case) -> tuple[float, bool]:
        slot = self._slot(case)
        if "continuation" not in slot:
            model, processor = self.pair(case)
            cont = processor.tokenizer(case.data["continuation"], add_special_tokens=False)
            slot["continuation_ids"] = cont["input_ids"]
            slot["continuation"] = score_continuation(
                model, self.inputs(case), torch.tensor(cont["input_ids"])
            )
        return slot["continuation"]


def eot_id(processor) -> int:
    """The end-of-turn token, found by name (fixture tokenizers renumber the Llama-3 ids)."""
    return processor.tokenizer.convert_tokens_to_ids(EOT_TOKEN)


def score_continuation(
    model, inputs: dict[str, Any], continuation: torch.Tensor
) -> tuple[float, bool]:
    """Summed log-probability of `continuation` after one prompt, and whether it is all argmax."""
    prompt_ids = inputs["input_ids"]  # [1, L]
    length = prompt_ids.shape[1]
    n = continuation.numel()
    ids = torch.cat([prompt_ids, continuation[None]], dim=1)  # [1, L + n]
    mask = torch.cat([inputs["attention_mask"], torch.ones(1, n, dtype=torch.long)], dim=1)
    indices = torch.cat(
        [inputs["image_patches_indices"][:, :length], torch.full((1, n), -1, dtype=torch.long)],
        dim=1,
    )
    with torch.no_grad():
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            image_patches=inputs["image_patches"],
            image_patches_indices=indices,
        ).logits[0]  # [L + n, V]
    predicting = logits[length - 1 : length - 1 + n].log_softmax(-1)  # [n, V]
    logprob = predicting.gather(-1, continuation[:, None]).sum().item()
    greedy = bool((predicting.argmax(-1) == continuation).all())
    return logprob, greedy


@pytest.fixture(scope="module")
def runner(load_pair) -> CaseRunner:
    return CaseRunner(load_pair)


def test_prompt_ids_and_image_indices_are_exact(golden_case, runner):
    inputs = runner.inputs(golden_case)
    expected = golden_case.data
    assert inputs["input_ids"][0].tolist() == expected["input_ids"]
    assert inputs["image_patches_indices"][0].tolist() == expected["image_patches_indices"]
    assert inputs["attention_mask"][0].tolist() == [1] * len(expected["input_ids"])


def test_pixels_match_reference(golden_case, runner):
    pixels = runner.inputs(golden_case)["image_patches"][0]  # [n_crops, 3, se, se]
    expected = golden_case.data
    tol = golden_case.golden.tolerances["pixels"]
    assert list(pixels.shape) == expected["pixel_shape"]
    sample = pixels.flatten()[torch.tensor(expected["pixel_sample_index"])]
    torch.testing.assert_close(
        sample, torch.tensor(expected["pixel_sample_value"]), atol=tol, rtol=0
    )
    torch.testing.assert_close(
        pixels.mean(dim=(2, 3)), torch.tensor(expected["pixel_crop_mean"]), atol=tol, rtol=0
    )
    torch.testing.assert_close(
        pixels.std(dim=(2, 3)), torch.tensor(expected["pixel_crop_std"]), atol=tol, rtol=0
    )


def test_last_position_logits_match_reference(golden_case, runner):
    logits = runner.logits(golden_case)
    expected = golden_case.data
    tol = golden_case.golden.tolerances["logits"]
    torch.testing.assert_close(logits[-1], torch.tensor(expected["last_logits"]), atol=tol, rtol=0)
    if "logits_mean_abs" in expected:
        assert logits.abs().mean().item() == pytest.approx(expected["logits_mean_abs"], abs=tol)


def test_greedy_generation_matches_reference(golden_case, runner):
    new_tokens = runner.greedy(golden_case)
    expected = golden_case.data
    assert new_tokens == expected["greedy_new_tokens"]
    _, processor = runner.pair(golden_case)
    assert processor.decode(new_tokens) == expected["generated_text"]
    full = runner.slot["greedy_full"]
    assert full[: len(expected["input_ids"])] == expected["input_ids"]
    if "greedy_full_len" in expected:
        assert len(full) == expected["greedy_full_len"]


def test_continuation_loglikelihood_matches_reference(golden_case, runner):
    logprob, greedy = runner.continuation(golden_case)
    expected = golden_case.data
    assert runner.slot["continuation_ids"] == expected["continuation_ids"]
    tol = golden_case.golden.tolerances["loglikelihood"]
    assert logprob == pytest.approx(expected["loglikelihood"], abs=tol)
    assert greedy == expected["is_greedy"]


def test_left_padded_batch_matches_reference_and_single_runs(golden_set, load_pair):
    batch = golden_set.data["batch"]
    cases = [golden_set.cases[i] for i in batch["cases"]]
    model, processor = load_pair(golden_set.checkpoint)
    inputs = processor(
        text=[c["prompt"] for c in cases],
        images=[golden_set.image(c["image"]) for c in cases],
        max_length=4096,
        return_tensors="pt",
        is_generate=True,
    )
    assert inputs["input_ids"].tolist() == batch["input_ids"]
    assert inputs["attention_mask"].tolist() == batch["attention_mask"]
    for row, case in enumerate(cases):
        kept = inputs["attention_mask"][row].bool()
        assert inputs["input_ids"][row][kept].tolist() == case["input_ids"]
    out = model.generate(
        **inputs,
        max_new_tokens=GENERATE_MAX_NEW_TOKENS,
        eos_token_id=eot_id(processor),
        do_sample=False,
    )
    new_tokens = out[:, inputs["input_ids"].shape[1] :].tolist()
    assert new_tokens == batch["greedy_new_tokens"]
    for row, case in zip(new_tokens, cases, strict=True):
        assert row[: len(case["greedy_new_tokens"])] == case["greedy_new_tokens"]


def test_auto_classes_load_the_same_model(golden_set, runner):
    path = str(golden_set.checkpoint)
    config = AutoConfig.from_pretrained(path)
    assert isinstance(config, DragonflyConfig)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(model, DragonflyForCausalLM)
    assert not model.training
    case = golden_set.case(0)
    with torch.no_grad():
        logits = model(**runner.inputs(case)).logits[0, -1]
    torch.testing.assert_close(logits, runner.logits(case)[-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        logits,
        torch.tensor(case.data["last_logits"]),
        atol=golden_set.tolerances["logits"],
        rtol=0,
    )
