"""Loading checkpoints: tower configs without downloads, and broken checkpoints refused early."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dragonfly_eval import DragonflyForCausalLM, DragonflyProcessor
from dragonfly_eval.modeling import loading
from dragonfly_eval.modeling.loading import CheckpointError, read_config


@pytest.fixture
def broken(tmp_path, v2_checkpoint) -> Path:
    """A writable copy of the v2 checkpoint to break."""
    folder = tmp_path / "checkpoint"
    shutil.copytree(v2_checkpoint, folder)
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the fixtures are read-only
    return folder


@pytest.fixture
def no_weight_reads(monkeypatch):
    """Fail the test if any tensor is read: errors must come before the weights load."""

    def refuse(files):
        raise AssertionError(f"weights were read from {files} before the error")

    monkeypatch.setattr(loading, "read_tensors", refuse)


def edit_config(folder: Path, **changes) -> None:
    config_file = folder / "config.json"
    data = json.loads(config_file.read_text())
    data.update(changes)
    config_file.write_text(json.dumps(data))


def test_missing_config_is_named(broken, no_weight_reads):
    (broken / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json.*missing"):
        DragonflyForCausalLM.from_pretrained(str(broken))
    with pytest.raises(CheckpointError, match=r"config\.json"):
        DragonflyProcessor.from_pretrained(str(broken))


def test_config_that_is_not_json_is_named(broken, no_weight_reads):
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json.*not valid JSON"):
        DragonflyForCausalLM.from_pretrained(str(broken))


def test_other_model_type_is_refused(broken, no_weight_reads):
    edit_config(broken, model_type="llava")
    with pytest.raises(CheckpointError, match=r"config\.json.*model_type is 'llava'"):
        DragonflyForCausalLM.from_pretrained(str(broken))


def test_unknown_image_encoder_is_refused(broken, no_weight_reads):
    edit_config(broken, image_encoder="someone/unknown-tower")
    with pytest.raises(CheckpointError, match=r"config\.json.*unknown image_encoder") as err:
        DragonflyForCausalLM.from_pretrained(str(broken))
    assert "someone/unknown-tower" in str(err.value)


def test_missing_tensor_is_named_before_loading(broken, no_weight_reads):
    weights = load_file(str(broken / "model.safetensors"))
    dropped = "vision_embed_tokens.weight"
    del weights[dropped]
    save_file(weights, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*missing") as err:
        DragonflyForCausalLM.from_pretrained(str(broken))
    assert dropped in str(err.value)


def test_mismatched_shape_is_named_before_loading(broken, no_weight_reads):
    weights = load_file(str(broken / "model.safetensors"))
    key = "language_model.lm_head.weight"
    rows, cols = weights[key].shape
    weights[key] = torch.zeros(rows + 1, cols)
    save_file(weights, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*shape") as err:
        DragonflyForCausalLM.from_pretrained(str(broken))
    assert key in str(err.value) and str(rows + 1) in str(err.value)


def test_missing_shard_of_an_index_is_named(broken, no_weight_reads):
    index = {"metadata": {}, "weight_map": {"x": "model-00001-of-00002.safetensors"}}
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"index\.json.*model-00001-of-00002"):
        DragonflyForCausalLM.from_pretrained(str(broken))


def test_no_weights_at_all_is_named(broken, no_weight_reads):
    (broken / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        DragonflyForCausalLM.from_pretrained(str(broken))


def make_pickle_only(folder: Path) -> None:
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")


def test_pickle_only_checkpoint_is_refused_naming_the_override(broken, no_weight_reads):
    make_pickle_only(broken)
    with pytest.raises(CheckpointError, match=r"allow_pickle=True") as err:
        DragonflyForCausalLM.from_pretrained(str(broken))
    assert "pytorch_model.bin" in str(err.value)


def test_pickle_weights_load_with_the_explicit_override(broken, v2_checkpoint):
    make_pickle_only(broken)
    model = DragonflyForCausalLM.from_pretrained(str(broken), allow_pickle=True)
    reference = DragonflyForCausalLM.from_pretrained(str(v2_checkpoint))
    for (name, value), (_, expected) in zip(
        model.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        assert torch.equal(value, expected), name


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        DragonflyForCausalLM.from_pretrained(str(tmp_path / "nope" / "deeper" / "x"))


def test_a_file_is_not_a_checkpoint_folder(broken):
    with pytest.raises(CheckpointError, match="expected a checkpoint folder"):
        DragonflyForCausalLM.from_pretrained(str(broken / "config.json"))


# --- tower configs, built without downloading anything --------------------------------------


@pytest.mark.parametrize(
    ("image_encoder", "version", "image_size", "patch_size", "hidden_size"),
    [
        ("openai/clip-vit-large-patch14-336", 2, 336, 14, 1024),
        ("openai/clip-vit-base-patch32", 1, 224, 32, 768),
    ],
)
def test_released_tower_ids_map_to_built_in_configs(
    broken, image_encoder, version, image_size, patch_size, hidden_size
):
    shutil.rmtree(broken / "clip")
    edit_config(broken, image_encoder=image_encoder)
    config = read_config(broken)
    vision = config.vision_config
    assert (vision.image_size, vision.patch_size, vision.hidden_size) == (
        image_size,
        patch_size,
        hidden_size,
    )
    assert config.version == version


def test_tower_folder_given_as_an_absolute_path(broken, tmp_path):
    tower = tmp_path / "elsewhere" / "tower"
    shutil.move(broken / "clip", tower)
    edit_config(broken, image_encoder=str(tower))
    assert (
        read_config(broken).vision_config.hidden_size
        == json.loads((tower / "config.json").read_text())["hidden_size"]
    )
    processor = DragonflyProcessor.from_pretrained(str(broken))
    expected = json.loads((tower / "preprocessor_config.json").read_text())["image_mean"]
    assert list(processor.image_processor.image_mean) == expected


def test_relative_tower_folder_resolves_against_the_checkpoint(v2_checkpoint):
    config = read_config(v2_checkpoint)
    tower = json.loads((v2_checkpoint / config.image_encoder / "config.json").read_text())
    assert config.vision_config.hidden_size == tower["hidden_size"]
    assert config.vision_config.image_size == tower["image_size"]


def test_top_level_null_rope_scaling_overrides_llama31_scaling(broken):
    # The released v2 config says rope_scaling: null beside a Llama-3.1 text config.
    text = json.loads((broken / "config.json").read_text())["text_config"]
    text["rope_scaling"] = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    edit_config(broken, rope_scaling=None, text_config=text)
    assert read_config(broken).text_config.rope_parameters["rope_type"] == "default"


@pytest.mark.parametrize("version", [1, 2])
def test_version_is_read_from_the_tower(version, checkpoint_for):
    checkpoint = checkpoint_for(version)
    assert read_config(checkpoint).version == version
    assert DragonflyProcessor.from_pretrained(str(checkpoint)).version == version
