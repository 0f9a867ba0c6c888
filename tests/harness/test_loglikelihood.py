"""loglikelihood through lmms-eval Instances on the tiny v2 fixture."""

import math

from harness_kit import Requests, noise_image


def test_batched_scores_equal_one_at_a_time_scores(v2_harness, v2_harness_plain):
    a, b = noise_image(21), noise_image(22, (50, 80))
    kit = Requests()
    reqs = [
        kit.ll("Which animal is this?", " a cat", kit.doc([a])),
        kit.ll("Complete the sentence: the sky is", " blue on a clear day", kit.doc([])),
        kit.ll("What colour dominates?", " red", kit.doc([b])),
        kit.ll("Which animal is this?", " a dog sitting on grass", kit.doc([a])),
    ]
    batched = kit.attach(v2_harness).loglikelihood(reqs)
    kit.attach(v2_harness_plain)
    one_by_one = [v2_harness_plain.loglikelihood([req])[0] for req in reqs]

    assert len({round(loss, 4) for loss, _ in one_by_one}) == len(reqs)  # order would show
    for (loss, greedy), (loss_1, greedy_1) in zip(batched, one_by_one, strict=True):
        assert isinstance(loss, float) and math.isfinite(loss) and loss > 0
        assert math.isclose(loss, loss_1, rel_tol=1e-5)
        assert greedy is greedy_1


def test_the_greedy_continuation_is_greedy(v2_harness_direct, kit, spy_generate):
    """A continuation equal to the model's own greedy tokens scores is_greedy=True."""
    tokenizer = v2_harness_direct.processor.tokenizer
    spy = spy_generate(v2_harness_direct)
    doc = kit.doc([])
    contexts = [
        "Hello there",
        "Tell me a story",
        "Why?",
        "abc def ghi",
        "What is 2+2?",
        "Name a color.",
        "Say something.",
        "Count to ten.",
    ]
    kit.attach(v2_harness_direct).generate_until(
        [kit.gen(c, doc, max_new_tokens=2) for c in contexts]
    )
    greedy_tokens = {}
    for k, call in enumerate(spy.calls):
        for row, tokens in zip(call["input_ids"], spy.new_tokens(k), strict=True):
            prompt = tokenizer.decode(row.tolist(), skip_special_tokens=False)
            greedy_tokens[prompt] = tokens
    # Continuations must survive decode -> encode to be the same tokens.
    found = None
    for context in contexts:
        prompt = next(p for p in greedy_tokens if context + "<|eot_id|>" in p)
        tokens = greedy_tokens[prompt]
        text = tokenizer.decode(tokens)
        if len(tokens) == 2 and tokenizer(text, add_special_tokens=False)["input_ids"] == tokens:
            found = (context, text)
            break
    assert found is not None, "no greedy continuation survives decode/encode"
    context, text = found
    (loss, greedy), (_, other) = v2_harness_direct.loglikelihood(
        [kit.ll(context, text, doc), kit.ll(context, text + " and more", doc)]
    )
    assert greedy is True and math.isfinite(loss)
    assert other is False


def test_a_doc_to_target_continuation_is_read_from_the_document(v2_harness_plain):
    """`output_type: loglikelihood` tasks pass the task's doc_to_target, not text."""
    image = noise_image(23)
    kit = Requests()
    doc = kit.doc([image])
    as_text = kit.ll("What colour dominates?", "red", doc)
    as_target = kit.ll("What colour dominates?", lambda d: "red", doc)
    broken = kit.ll("What colour dominates?", lambda d: d["no such field"], doc)
    kit.attach(v2_harness_plain)
    text_score, target_score, broken_score = v2_harness_plain.loglikelihood(
        [as_text, as_target, broken]
    )
    assert target_score == text_score
    assert broken_score == (float("inf"), False)
