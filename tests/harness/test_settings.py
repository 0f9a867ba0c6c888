import pytest

from dragonfly_eval.engine.requests import (
    DEFAULT_MAX_NEW_TOKENS,
    as_bool,
    cut_at_stop,
    generation_settings,
)
from dragonfly_eval.harness.model import gen_kwargs_key, valid_model_args


def test_greedy_settings_and_stop_strings():
    gen_kwargs = {"until": ["\n\n", ""], "max_new_tokens": "5", "temperature": 0}
    settings, until = generation_settings(gen_kwargs)
    assert settings == {"max_new_tokens": 5, "num_beams": 1, "do_sample": False}
    assert until == ["\n\n"]
    # lmms-eval shares one gen_kwargs dict between a task's requests: it must stay intact.
    assert gen_kwargs["until"] == ["\n\n", ""]


def test_sampling_settings():
    settings, until = generation_settings(
        {"until": "###", "temperature": 0.7, "top_p": "0.9", "do_sample": True, "num_beams": "2"}
    )
    assert settings == {
        "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
        "num_beams": 2,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
    }
    assert until == ["###"]


@pytest.mark.parametrize(
    "gen_kwargs",
    [
        {"temperature": 0, "do_sample": True},  # temperature 0 means greedy
        {"temperature": 0.5, "do_sample": "false"},
        {"temperature": None},
        {},
    ],
)
def test_greedy_unless_sampling_with_a_temperature(gen_kwargs):
    settings, until = generation_settings(gen_kwargs)
    assert settings["do_sample"] is False
    assert "temperature" not in settings and "top_p" not in settings
    assert until == []


def test_temperature_alone_turns_sampling_on():
    settings, _ = generation_settings({"temperature": 0.2})
    assert settings["do_sample"] is True and settings["temperature"] == 0.2


def test_cut_at_stop_cuts_at_the_earliest_stop_and_strips():
    text = "  The answer. Then more\n\nand more"
    assert cut_at_stop(text, ["\n\n", "."]) == "The answer"
    assert cut_at_stop(text, ["\n\n"]) == "The answer. Then more"
    assert cut_at_stop(text, ["absent"]) == text.strip()
    assert cut_at_stop(text, []) == text.strip()
    assert cut_at_stop("stop at once", ["stop"]) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("off", False),
        ("", False),
        (True, True),
        (0, False),
    ],
)
def test_as_bool(value, expected):
    assert as_bool(value) is expected


def test_as_bool_rejects_other_words():
    with pytest.raises(ValueError, match="maybe"):
        as_bool("maybe")


def test_valid_model_args_are_the_documented_ones():
    names = valid_model_args()
    for name in (
        "pretrained",
        "device",
        "dtype",
        "batch_size",
        "attn_implementation",
        "device_map",
        "zoom",
        "max_length",
        "image_cache",
    ):
        assert name in names
    assert "self" not in names and "unknown" not in names


def test_gen_kwargs_key_ignores_key_order_only():
    assert gen_kwargs_key({"until": ["\n"], "max_new_tokens": 4}) == gen_kwargs_key(
        {"max_new_tokens": 4, "until": ["\n"]}
    )
    assert gen_kwargs_key({"max_new_tokens": 4}) != gen_kwargs_key({"max_new_tokens": 5})
