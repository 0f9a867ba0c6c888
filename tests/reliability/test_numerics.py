import numpy as np
import pytest
import torch
from lmms_eval.api.instance import Instance
from loguru import logger
from PIL import Image

from dragonfly_eval.engine.numerics import NonFiniteWatch, float32_model
from dragonfly_eval.harness.model import Dragonfly

N_DOCS = 4


def test_watch_flags_nan_posinf_and_all_neginf_rows_only():
    watch = NonFiniteWatch()
    scores = torch.zeros(5, 6)
    scores[1, 2] = float("nan")
    scores[2, 0] = float("inf")
    scores[3] = float("-inf")
    scores[4, 1] = float("-inf")  # one masked token is what logits processors do on purpose
    assert watch(None, scores) is scores  # passes the scores through untouched
    watch(None, torch.zeros(5, 6))
    assert watch.bad_rows() == [1, 2, 3]


def test_float32_model_gives_each_tensor_its_dtype_back():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)).to(torch.bfloat16)
    model[1].weight = model[0].weight  # tied
    model[0].register_buffer("freqs", torch.rand(4))  # float32 on purpose
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with float32_model(model):
        assert {v.dtype for v in model.state_dict().values()} == {torch.float32}
    after = model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    assert model[1].weight is model[0].weight


@pytest.fixture(scope="module")
def images():
    rs = np.random.RandomState(1)
    return [
        Image.fromarray(rs.randint(0, 255, (30 + 7 * i, 40, 3), dtype=np.uint8))
        for i in range(N_DOCS)
    ]


def _bf16_model(images, **kwargs):
    model = Dragonfly(
        pretrained="dragonfly-tiny",
        device="cpu",
        dtype="bfloat16",
        zoom="low",
        batch_size=2,
        **kwargs,
    )
    model.task_dict = {"t": {"test": {i: {"image": images[i]} for i in range(N_DOCS)}}}
    return model


def _requests(kind):
    def visual(doc):
        return [doc["image"]]

    def args(i):
        if kind == "generate_until":
            gen = {"until": ["\n\n"], "max_new_tokens": 4, "temperature": 0}
            return (f"What is in picture {i}?", gen, visual, i, "t", "test")
        return (f"What is in picture {i}?", " a cat", visual, i, "t", "test")

    return [
        Instance(kind, args(i), idx=0, metadata={"task": "t", "doc_id": i, "repeats": 1})
        for i in range(N_DOCS)
    ]


def _poison_half_precision(model):
    """NaN logits whenever the LM head (where generation and scoring both end) runs in a dtype
    other than float32."""
    head = model.model.language_model.lm_head

    def hook(module, args, output):
        if head.weight.dtype != torch.float32:
            return torch.full_like(output, float("nan"))
        return output

    return head.register_forward_hook(hook)


@pytest.mark.parametrize("kind", ["generate_until", "loglikelihood"])
def test_nan_logits_are_redone_in_float32_and_logged_with_doc_ids(kind, images):
    reference = _bf16_model(images, image_cache=False, prefix_cache=False)
    reference.model.float()  # the same weights, everything in float32
    expected = getattr(reference, kind)(_requests(kind))
    model = _bf16_model(images)
    half = getattr(model, kind)(_requests(kind))
    if kind == "loglikelihood":  # losses tell which precision ran (short answers may agree)
        assert half != expected

    handle = _poison_half_precision(model)
    messages = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        answers = getattr(model, kind)(_requests(kind))
    finally:
        logger.remove(sink)
        handle.remove()

    assert answers == expected
    assert model.engine.nonfinite_retries == N_DOCS // 2  # every batch of two was redone once
    assert model.model.dtype == torch.bfloat16
    log = "".join(messages)
    assert all(f"t doc_id={i}" in log for i in range(N_DOCS))
    assert getattr(model, kind)(_requests(kind)) == half  # back to bfloat16 afterwards
