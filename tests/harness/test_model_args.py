"""Constructing the model class the way lmms-eval does: model_args, registration, bad paths."""

import pytest

from dragonfly_eval.harness.model import Dragonfly


def test_unknown_model_args_are_rejected_with_the_valid_ones(v2_checkpoint):
    with pytest.raises(ValueError) as err:
        Dragonfly.create_from_arg_string(f"pretrained={v2_checkpoint},batchsize=4,devcie=cpu")
    message = str(err.value)
    assert "batchsize" in message and "devcie" in message
    for valid in ("pretrained", "batch_size", "device", "zoom", "image_cache"):
        assert valid in message


def test_a_missing_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(Exception, match=str(missing)):
        Dragonfly(pretrained=str(missing), device="cpu")


@pytest.mark.parametrize(
    ("model_args", "error"),
    [
        ("batch_size=0", "batch_size"),
        ("image_cache=maybe", "maybe"),
        ("max_batch_size=8", "max_batch_size=8 is not supported"),  # refused, not ignored
        ("device_resize=sometimes", "device_resize='sometimes' is not valid"),
    ],
)
def test_bad_values_are_rejected(v2_checkpoint, model_args, error):
    with pytest.raises(ValueError, match=error):
        Dragonfly.create_from_arg_string(f"pretrained={v2_checkpoint},device=cpu,{model_args}")


def test_model_args_win_over_lmms_eval_flags(v2_checkpoint):
    # lmms-eval always passes its own --batch_size / --device values, defaults included.
    harness = Dragonfly.create_from_arg_string(
        f"pretrained={v2_checkpoint},batch_size=4,image_cache=false",
        {"batch_size": 1, "device": None},
    )
    assert harness.batch_size == 4
    assert harness.engine.settings.image_cache is False
    assert harness.device.type in ("cpu", "cuda")


def test_device_resize_reaches_the_image_processor(v2_checkpoint):
    forced = Dragonfly.create_from_arg_string(
        f"pretrained={v2_checkpoint},device=cpu,device_resize=TRUE"
    )
    assert forced.processor.image_processor.device_resize is True
    assert forced.engine.processor.image_processor.resizes_on_device(forced.device)
    default = Dragonfly.create_from_arg_string(f"pretrained={v2_checkpoint},device=cpu")
    assert default.processor.image_processor.device_resize == "auto"


def test_lmms_eval_flags_apply_when_model_args_are_silent(v2_checkpoint):
    harness = Dragonfly.create_from_arg_string(
        f"pretrained={v2_checkpoint}", {"batch_size": 3, "device": "cpu"}
    )
    assert harness.batch_size == 3
    assert harness.device.type == "cpu"


def test_the_entry_point_resolves_to_the_model_class():
    from lmms_eval.models import get_model

    cls = get_model("dragonfly")
    assert cls is Dragonfly
    assert cls.is_simple is True
