"""How many tokens a row of `generate` output generated (the run-cost record's token count)."""

from __future__ import annotations

from dragonfly_eval.engine.engine import generated_part

EOT, PAD = 1, 0


def decode(ids: list[int]) -> str:
    return "".join({5: "a", 6: "\n", 7: "b"}.get(i, "?") for i in ids)


def test_a_row_ends_with_its_stop_token_or_before_its_padding():
    assert generated_part([5, 7, EOT, PAD, PAD], [EOT], PAD) == [5, 7, EOT]
    assert generated_part([5, 7, PAD, PAD], [EOT], PAD) == [5, 7]
    assert generated_part([5, 7, 5], [EOT], PAD) == [5, 7, 5]  # ran to the token limit


def test_padding_that_is_the_stop_token_after_a_stop_string_is_not_generated():
    # no pad token: generate pads with the end of text, also after a row a stop string ended
    assert generated_part([5, 6, 6, EOT, EOT], [EOT], None, decode, ("\n\n",)) == [5, 6, 6]
    assert generated_part([5, 6, EOT, EOT], [EOT], None, decode, ("\n\n",)) == [5, 6, EOT]
