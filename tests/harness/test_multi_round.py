"""generate_until_multi_round, following lmms-eval's doc_to_text protocol."""

from harness_kit import noise_image


class RoundScript:
    """A multi-round task's doc_to_text: `rounds` rounds per document, recording every call."""

    def __init__(self, image) -> None:
        self.image = image
        self.calls: list[dict] = []

    def __call__(self, doc, previous_output=None, round_idx=None, previous_round_info=None):
        self.calls.append(
            {
                "doc": doc["name"],
                "previous_output": list(previous_output),
                "round_idx": round_idx,
                "info": previous_round_info,
            }
        )
        if round_idx >= doc["rounds"]:
            return None, None, True, ["final", doc["name"], *previous_output], None
        visuals = [self.image] if round_idx == 1 else []
        return visuals, f"Round {round_idx}: go on.", False, None, {"round": round_idx}


def test_rounds_run_until_doc_to_text_says_stop(v2_harness_direct, kit, spy_generate):
    image = noise_image(31)
    script = RoundScript(image)
    long_doc = kit.doc([image], name="long", rounds=3)
    short_doc = kit.doc([], name="short", rounds=1)
    spy = spy_generate(v2_harness_direct)
    results = kit.attach(v2_harness_direct).generate_until_multi_round(
        [
            kit.multi_round("First question, with a picture.", long_doc, script),
            kit.multi_round("First question.", short_doc, script),
        ]
    )

    long_calls = [c for c in script.calls if c["doc"] == "long"]
    short_calls = [c for c in script.calls if c["doc"] == "short"]
    assert [c["round_idx"] for c in long_calls] == [1, 2, 3]
    assert [c["round_idx"] for c in short_calls] == [1]
    assert [c["info"] for c in long_calls] == [None, {"round": 1}, {"round": 2}]
    # Each round sees all previous outputs, growing by one per round.
    outputs = long_calls[-1]["previous_output"]
    assert len(outputs) == 3
    assert [c["previous_output"] for c in long_calls] == [outputs[:1], outputs[:2], outputs[:3]]
    assert len(short_calls[0]["previous_output"]) == 1

    # The result is what doc_to_text returned at the terminal round.
    assert results[0] == ["final", "long", *outputs]
    assert results[1] == ["final", "short", *short_calls[0]["previous_output"]]

    # Round 0: document images (long: 1, short: 0); round 1: doc_to_text's image; round 2: none.
    per_round = [sorted(call["images_per_sample"]) for call in spy.calls]
    assert per_round == [[0, 1], [1], [0]]


def test_first_round_output_is_a_plain_generation(v2_harness, kit):
    doc = kit.doc([], name="short", rounds=1)
    script = RoundScript(None)
    kit.attach(v2_harness)
    v2_harness.generate_until_multi_round([kit.multi_round("Say hi.", doc, script)])
    (call,) = script.calls
    assert call["previous_output"] == v2_harness.generate_until([kit.gen("Say hi.", doc)])
