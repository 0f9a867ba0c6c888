"""generate_until through lmms-eval Instances on the tiny v2 fixture."""

import pytest
from harness_kit import Requests, noise_image

from dragonfly_eval.engine.caches import image_digest
from dragonfly_eval.modeling import chat_prompt

# Spec: one v2 image block = 577 + 40 * 37 visual embeddings plus the separators = 2098 positions.
V2_POSITIONS_PER_IMAGE = 2098
LLAMA3_USER_TURN = "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
LLAMA3_ASSISTANT_START = "<|start_header_id|>assistant<|end_header_id|>\n\n"


@pytest.fixture(scope="module")
def mixed(v2_harness, v2_harness_plain):
    """Eight requests (prompt lengths 0-7 words, shuffled; an image, a repeated image or
    none), answered batched (batch_size 4, image and prefix caches, prefetch) and one request
    per call (batch_size 1, no caches, no prefetch)."""
    a, b = noise_image(1), noise_image(2, (120, 30))
    visuals = [[a], [], [b], [a], [], [], [], []]
    words = [3, 0, 7, 1, 5, 2, 6, 4]
    kit = Requests()
    reqs = [
        kit.gen(f"Question {i}: " + "what is shown here " * n, kit.doc(images))
        for i, (images, n) in enumerate(zip(visuals, words, strict=True))
    ]
    batched = kit.attach(v2_harness).generate_until(reqs)
    kit.attach(v2_harness_plain)
    one_by_one = [v2_harness_plain.generate_until([req])[0] for req in reqs]
    return {"kit": kit, "requests": reqs, "batched": batched, "one_by_one": one_by_one}


def test_batched_answers_equal_one_at_a_time_answers_in_request_order(mixed):
    assert len(mixed["batched"]) == len(mixed["requests"])
    assert all(isinstance(answer, str) for answer in mixed["batched"])
    # Distinct answers, so that a wrong order could not go unnoticed.
    assert len(set(mixed["one_by_one"])) >= 4
    assert mixed["batched"] == mixed["one_by_one"]


def test_text_only_document_uses_the_chat_prompt_and_no_image(v2_harness_direct, kit, spy_generate):
    spy = spy_generate(v2_harness_direct)
    context = "Name a color."
    kit.attach(v2_harness_direct).generate_until([kit.gen(context, kit.doc([]))])

    (call,) = spy.calls
    assert call["visual_embeds"] is None
    assert list(call["images_per_sample"]) == [0]
    assert int((call["image_patches_indices"] >= 0).sum()) == 0
    prompt = v2_harness_direct.processor.tokenizer.decode(call["input_ids"][0].tolist())
    assert prompt == "<|begin_of_text|>" + LLAMA3_USER_TURN.format(context) + LLAMA3_ASSISTANT_START


def test_multi_image_documents_get_one_block_per_image_in_order(
    v2_harness_direct, kit, spy_generate
):
    a, b = noise_image(11), noise_image(12, (90, 60))
    spy = spy_generate(v2_harness_direct)
    # Decreasing context lengths, so the batch keeps the request order.
    reqs = [
        kit.gen("Compare the two pictures, please.", kit.doc([a, b])),
        kit.gen("Compare the pictures, please.", kit.doc([a])),
        kit.gen("Compare the pictures.", kit.doc([b, a])),
    ]
    answers = kit.attach(v2_harness_direct).generate_until(reqs)

    assert answers[0] != answers[1]  # the second image changes the answer
    (call,) = spy.calls
    assert list(call["images_per_sample"]) == [2, 1, 2]
    for row, req in enumerate(reqs):
        text_len = len(v2_harness_direct.processor.text_ids(chat_prompt(req.args[0])))
        image_positions = int(call["attention_mask"][row].sum()) - text_len
        assert image_positions == V2_POSITIONS_PER_IMAGE * call["images_per_sample"][row]
    # Visual embeddings are stacked per request, each request's images in document order.
    cached = {
        name: v2_harness_direct.engine.caches.embeddings.get(image_digest(im))
        for name, im in {"a": a, "b": b}.items()
    }
    expected = [cached[name] for name in "ab" + "a" + "ba"]
    assert call["visual_embeds"].shape[0] == len(expected)
    for got, want in zip(call["visual_embeds"], expected, strict=True):
        assert want is not None and bool((got == want).all())


def test_stop_strings_cut_the_answer(v2_harness, mixed):
    kit, answers = mixed["kit"], mixed["one_by_one"]
    text_only = [i for i, req in enumerate(mixed["requests"]) if not kit.docs[req.doc_id]["images"]]
    picked = next(
        (
            (i, answers[i][k : k + 2])
            for i in text_only
            for k in range(1, len(answers[i]) - 1)
            if not any(ch.isspace() for ch in answers[i][k : k + 2])
        ),
        None,
    )
    assert picked is not None, f"no text-only answer long enough to cut: {answers}"
    i, stop = picked
    req = mixed["requests"][i]
    cut = kit.attach(v2_harness).generate_until([kit.gen(req.args[0], req.doc_id, until=[stop])])
    full = answers[i]
    assert cut == [full[: full.find(stop)].strip()]
    assert len(cut[0]) < len(full)


def test_stop_tokens_include_eot(v2_harness_direct, kit, spy_generate):
    spy = spy_generate(v2_harness_direct)
    kit.attach(v2_harness_direct).generate_until([kit.gen("Hello", kit.doc([]))])
    assert v2_harness_direct.processor.eot_id in spy.calls[0]["eos_token_id"]


def test_max_new_tokens_is_respected(v2_harness_direct, kit, spy_generate):
    spy = spy_generate(v2_harness_direct)
    doc = kit.doc([])
    kit.attach(v2_harness_direct).generate_until(
        [kit.gen("Tell me a story", doc, max_new_tokens=2), kit.gen("Tell me a story", doc)]
    )
    # Different max_new_tokens: two groups, two generate calls.
    lengths = sorted(len(spy.new_tokens(k)[0]) for k in range(len(spy.calls)))
    assert lengths[0] <= 2
    assert sorted(call["max_new_tokens"] for call in spy.calls) == [2, 6]


def test_temperature_zero_is_greedy_and_deterministic(v2_harness_direct, kit, spy_generate):
    spy = spy_generate(v2_harness_direct)
    doc = kit.doc([])
    kit.attach(v2_harness_direct)
    first = v2_harness_direct.generate_until([kit.gen("Why?", doc, temperature=0, do_sample=True)])
    again = v2_harness_direct.generate_until([kit.gen("Why?", doc, temperature=0)])
    assert first == again
    assert all(call["do_sample"] is False for call in spy.calls)


def test_beam_search_and_sampling_run(v2_harness_direct, kit, spy_generate):
    spy = spy_generate(v2_harness_direct)
    doc = kit.doc([])
    answers = kit.attach(v2_harness_direct).generate_until(
        [
            kit.gen("Why?", doc, num_beams=2),
            kit.gen("Why?", doc, temperature=0.8, top_p=0.9, do_sample=True),
        ]
    )
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    beams, sampled = spy.calls
    assert beams["num_beams"] == 2 and beams["do_sample"] is False
    assert sampled["do_sample"] is True
    assert (sampled["temperature"], sampled["top_p"]) == (0.8, 0.9)


def test_unknown_gen_kwargs_are_warned_about_once_per_task(v2_harness, kit, log_lines):
    doc = kit.doc([])
    reqs = [kit.gen("Hello", doc, image_aspect_ratio="pad", repetition_penalty=1.2)] * 2
    kit.attach(v2_harness).generate_until(reqs)
    warned = [line for line in log_lines if line.startswith("WARNING") and "gen_kwargs" in line]
    assert len(warned) == 2
    assert "image_aspect_ratio='pad'" in warned[0] and "repetition_penalty=1.2" in warned[1]
    assert all(f"task={kit.task}" in line for line in warned)
