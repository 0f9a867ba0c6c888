"""On a CUDA device with vLLM: the vLLM engine against the HF engine in bfloat16.

GPU kernels of the two engines sum in other orders, so tokens are not equal throughout (vLLM
issues #1069, #1334): greedy tokens must agree up to the first divergence, and there (and at
every position before) each engine's token must be among the other's top 5. Likelihood scores
(mean negative log-likelihood per continuation token) must agree within NOISE_NATS, or
NOISE_SHARE of the score where that is larger: bfloat16 keeps 8 bits of mantissa (0.4%), and
a score sums the rounding of every position.

The checkpoint is DRAGONFLY_CHECKPOINT when it names a Dragonfly folder (the released one,
say), else a random released-format v2 checkpoint (41 crops, head_dim 32). Run with
`pytest tests/gpu/test_gpu_vllm.py -q` (bench/gpu_check.sh does).
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch

from tests.on_vllm.vllm_kit import noise, write_released_checkpoint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.vllm,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(
        find_spec("vllm") is None,
        reason="vLLM is not installed (VLLM=1 bash scripts/bootstrap.sh installs the CUDA build)",
    ),
]
NEW_TOKENS = 16
TOP = 5
NOISE_NATS, NOISE_SHARE = 0.05, 0.02
QUESTIONS = [
    ("Compare the two images.", 2),
    ("What is in the image? Describe it.", 1),
    ("Write one sentence about the sea.", 0),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    given = os.environ.get("DRAGONFLY_CHECKPOINT")
    if given:
        if not (Path(given) / "config.json").is_file():
            pytest.fail(f"DRAGONFLY_CHECKPOINT={given} is not a Dragonfly folder (no config.json)")
        return Path(given)
    return write_released_checkpoint(tmp_path_factory.mktemp("dragonfly-v2-random"), 2, seed=2)


@pytest.fixture(scope="module")
def engines(checkpoint):
    """(HF model, its processor, the vLLM engine), both bfloat16 on the one GPU; vLLM's engine
    core in this process (no spawned interpreter re-importing pytest), eager (no compilation or
    CUDA graph capture at start-up: the check has minutes)."""
    from dragonfly_eval.modeling import DragonflyForCausalLM, DragonflyProcessor
    from dragonfly_eval.vllm.engine import VllmEngine, VllmSettings

    saved = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    # vLLM first, bounded, so that it leaves the HF model room on the same GPU
    vllm = VllmEngine(
        str(checkpoint),
        VllmSettings(
            dtype="bfloat16",
            gpu_memory_utilization=0.4,
            max_model_len=8192,  # two images and a question; a KV cache an 80 GB GPU can hold
            enforce_eager=True,
            progress=False,
        ),
    )
    model = DragonflyForCausalLM.from_pretrained(str(checkpoint), dtype="bfloat16", device="cuda")
    yield model.eval(), DragonflyProcessor.from_pretrained(str(checkpoint)), vllm
    vllm.close()
    if saved is None:
        os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
    else:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = saved


def _images(n: int, seed: int) -> list:
    return [noise(seed + i, (300 + 100 * i, 200)) for i in range(n)]


@torch.no_grad()
def _hf_tokens_and_top(model, processor, prompt: str, images: list) -> tuple[list, list]:
    """Greedy new tokens of the HF engine's model, and its top-5 ids at each of them (one
    forward pass over the prompt and the tokens)."""
    inputs = processor(text=[prompt], images=[images or None])
    cuda = {k: v.cuda() if torch.is_tensor(v) else v for k, v in inputs.items()}
    cuda["image_patches"] = [p.cuda() for p in inputs["image_patches"]]
    out = model.generate(
        **cuda, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=processor.eot_id
    )
    n = cuda["input_ids"].shape[1]
    tokens = out[0, n:].tolist()
    extra = torch.tensor([tokens], device="cuda")
    cuda["input_ids"] = torch.cat([cuda["input_ids"], extra], 1)
    cuda["attention_mask"] = torch.cat([cuda["attention_mask"], torch.ones_like(extra)], 1)
    cuda["image_patches_indices"] = torch.cat(  # -1: no image position
        [cuda["image_patches_indices"], torch.full_like(extra, -1)], 1
    )
    logits = model(**cuda).logits[0, n - 1 : n - 1 + len(tokens)].float()  # [T, vocab]
    return tokens, logits.topk(TOP, dim=-1).indices.tolist()


def _vllm_tokens_and_top(vllm, processor, prompt: str, images: list) -> tuple[list, list]:
    """Greedy new tokens of vLLM, and its top-5 ids at each of them."""
    from vllm import SamplingParams

    ids = [processor.placeholder_id] * len(images) + processor.text_ids(prompt)
    request = {"prompt_token_ids": ids}
    if images:
        request["multi_modal_data"] = {"image": images}
    params = SamplingParams(
        max_tokens=NEW_TOKENS, temperature=0.0, logprobs=TOP, stop_token_ids=[processor.eot_id]
    )
    (out,) = vllm.llm.generate([request], params, use_tqdm=False)
    completion = out.outputs[0]
    top = [sorted(step, key=lambda t: step[t].rank)[:TOP] for step in completion.logprobs]
    return list(completion.token_ids), top


@pytest.mark.parametrize(("question", "n_images"), QUESTIONS, ids=["2-images", "1-image", "text"])
def test_bf16_tokens_agree_up_to_the_first_divergence_within_each_others_top_5(
    engines, question, n_images
):
    from dragonfly_eval.modeling import chat_prompt

    model, processor, vllm = engines
    prompt, images = chat_prompt(question), _images(n_images, seed=10 * n_images)
    hf, hf_top = _hf_tokens_and_top(model, processor, prompt, images)
    ours, our_top = _vllm_tokens_and_top(vllm, processor, prompt, images)
    diverge = next(
        (i for i, (a, b) in enumerate(zip(hf, ours, strict=False)) if a != b),
        min(len(hf), len(ours)),
    )
    print(f"{question!r}: {diverge} of {len(hf)} tokens equal before the first divergence")
    for i in range(min(diverge + 1, len(hf), len(ours))):
        assert hf[i] in our_top[i], (i, hf, ours)
        assert ours[i] in hf_top[i], (i, hf, ours)


def test_bf16_likelihood_scores_agree_within_noise(engines):
    from dragonfly_eval.engine import Engine, EngineSettings, ScoreRequest

    model, processor, vllm = engines
    requests = [
        ScoreRequest("What is in the image?", " a red circle", _images(1, 50), "t", 0),
        ScoreRequest("Compare them.", " the first is larger", _images(2, 60), "t", 1),
        ScoreRequest("Say yes or no.", " yes", [], "t", 2),
    ]
    hf = Engine(model, processor, EngineSettings(progress=False)).score(requests)
    ours = vllm.score(requests)
    for (got, _), (want, _) in zip(ours, hf, strict=True):
        assert abs(got - want) <= max(NOISE_NATS, NOISE_SHARE * abs(want)), (got, want)
