"""Loading checkpoints: tower configs without downloads, and broken checkpoints refused early."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from dragonfly_eval import DragonflyForCausalLM, DragonflyProcessor
from dragonfly_eval.modeling import loading
from dragonfly_eval.modeling.checkpoint_files import CheckpointError
from dragonfly_eval.modeling.configuration import DragonflyConfig
from dragonfly_eval.modeling.loading import read_config


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
    """Fail the test if the weights start loading (transformers' `from_pretrained`, which
    reads every tensor): errors must come before."""

    def refuse(cls, *args, **kwargs):
        raise AssertionError(f"weights were loaded from {args[:1]} before the error")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))


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


# --- weight files: safetensors inside the checkpoint folder ---------------------------------


def write_index(folder: Path, *shards: str) -> None:
    """A safetensors index mapping one made-up tensor name to each shard."""
    weight_map = {f"tensor{i}": shard for i, shard in enumerate(shards)}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


@pytest.mark.parametrize("allow_pickle", [False, True])
def test_index_listing_pickle_shards_is_refused_whatever_allow_pickle(
    broken, no_weight_reads, allow_pickle
):
    weights = load_file(str(broken / "model.safetensors"))
    (broken / "model.safetensors").unlink()
    torch.save(weights, broken / "pytorch_model-00001-of-00001.bin")
    write_index(broken, "pytorch_model-00001-of-00001.bin")
    with pytest.raises(CheckpointError, match=r"index\.json.*not safetensors") as err:
        DragonflyForCausalLM.from_pretrained(str(broken), allow_pickle=allow_pickle)
    assert "pytorch_model-00001-of-00001.bin" in str(err.value)


def outside_copy(broken: Path) -> Path:
    """The checkpoint's weights, copied to a file beside (outside) the checkpoint folder."""
    outside = broken.parent / "elsewhere" / "stolen.safetensors"
    outside.parent.mkdir()
    shutil.copy(broken / "model.safetensors", outside)
    (broken / "model.safetensors").unlink()
    return outside


def test_index_shard_names_climbing_out_are_refused(broken, no_weight_reads):
    outside_copy(broken)
    for name in ["../elsewhere/stolen.safetensors", "sub/../../elsewhere/stolen.safetensors"]:
        write_index(broken, name)
        with pytest.raises(CheckpointError, match=r"inside the checkpoint folder") as err:
            DragonflyForCausalLM.from_pretrained(str(broken))
        assert name in str(err.value)


def test_index_shard_given_as_an_absolute_path_is_refused(broken, no_weight_reads):
    write_index(broken, str(outside_copy(broken)))
    with pytest.raises(CheckpointError, match=r"inside the checkpoint folder"):
        DragonflyForCausalLM.from_pretrained(str(broken))


def test_shard_linking_outside_the_folder_is_refused(broken, no_weight_reads):
    (broken / "model-00001-of-00001.safetensors").symlink_to(outside_copy(broken))
    write_index(broken, "model-00001-of-00001.safetensors")
    with pytest.raises(CheckpointError, match=r"resolve outside the checkpoint folder"):
        DragonflyForCausalLM.from_pretrained(str(broken))


def test_single_weight_file_linking_outside_the_folder_is_refused(broken, no_weight_reads):
    (broken / "model.safetensors").symlink_to(outside_copy(broken))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*resolve outside"):
        DragonflyForCausalLM.from_pretrained(str(broken))


def assert_same_weights(folder: Path, reference: DragonflyForCausalLM) -> None:
    expected = reference.state_dict()
    model = DragonflyForCausalLM.from_pretrained(str(folder))
    assert all(torch.equal(value, expected[k]) for k, value in model.state_dict().items())


def test_a_link_to_a_file_inside_the_folder_loads(broken, v2_pair):
    (broken / "weights").mkdir()
    shutil.move(broken / "model.safetensors", broken / "weights" / "real.safetensors")
    (broken / "model.safetensors").symlink_to(Path("weights") / "real.safetensors")
    assert_same_weights(broken, v2_pair[0])


def test_a_hub_snapshot_linking_into_its_blobs_loads(tmp_path, broken, v2_pair):
    # huggingface_hub's cache: snapshots/<revision>/<file> links into the repository's blobs.
    repo = tmp_path / "hub" / "models--org--dragonfly"
    snapshot = repo / "snapshots" / "0123abc"
    shutil.copytree(broken, snapshot)
    (repo / "blobs").mkdir()
    shutil.move(snapshot / "model.safetensors", repo / "blobs" / "f00d")
    (snapshot / "model.safetensors").symlink_to(Path("..") / ".." / "blobs" / "f00d")
    assert_same_weights(snapshot, v2_pair[0])


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:20],  # cut inside the header
        lambda data: data[:-8],  # header says more bytes than the file holds
        lambda data: (10**12).to_bytes(8, "little") + data[8:],  # header length lies
    ],
    ids=["truncated-header", "truncated-data", "lying-length"],
)
def test_unreadable_safetensors_file_is_named(broken, no_weight_reads, damage):
    weights = broken / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors"):
        DragonflyForCausalLM.from_pretrained(str(broken))


# --- sizes and memory, checked from the config before anything is built --------------------


@pytest.fixture
def nothing_built(monkeypatch, no_weight_reads):
    """Fail the test if the model is built (even on the meta device) or a tensor is read."""

    def refuse(self, config):
        raise AssertionError("the model was built before the error")

    monkeypatch.setattr(DragonflyForCausalLM, "__init__", refuse)


def edit_text_config(folder: Path, **changes) -> None:
    text = json.loads((folder / "config.json").read_text())["text_config"]
    edit_config(folder, text_config={**text, **changes})


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"hidden_size": 1e9}, "hidden_size"),
        ({"vocab_size": 1e12}, "vocab_size"),
        ({"num_hidden_layers": 1e7}, "num_hidden_layers"),
        ({"intermediate_size": 64.5}, "intermediate_size"),
        ({"hidden_size": -64}, "hidden_size=-64"),
        ({"num_key_value_heads": 0}, "num_key_value_heads=0"),
        ({"vocab_size": "388"}, "vocab_size"),
    ],
)
def test_sizes_that_are_not_positive_integers_are_refused(broken, nothing_built, changes, named):
    edit_text_config(broken, **changes)
    with pytest.raises(CheckpointError, match=r"config\.json") as err:
        DragonflyForCausalLM.from_pretrained(str(broken))
    assert named in str(err.value)


def test_tower_size_that_is_not_an_integer_is_refused(broken, nothing_built):
    tower = json.loads((broken / "clip" / "config.json").read_text())
    (broken / "clip" / "config.json").write_text(json.dumps({**tower, "patch_size": 14.5}))
    with pytest.raises(CheckpointError, match=r"clip/config\.json.*patch_size"):
        DragonflyForCausalLM.from_pretrained(str(broken))


@pytest.mark.parametrize(
    "changes",
    [{"hidden_size": 10**9}, {"vocab_size": 10**12}, {"num_hidden_layers": 10**7}],
    ids=["hidden_size", "vocab_size", "num_hidden_layers"],
)
def test_absurd_language_model_sizes_are_refused_before_allocating(broken, nothing_built, changes):
    edit_text_config(broken, **changes)
    with pytest.raises(CheckpointError, match=r"implies [\d,]+ parameters.*GiB.*free on"):
        DragonflyForCausalLM.from_pretrained(str(broken))


def test_absurd_tower_image_size_is_refused_before_allocating(broken, nothing_built):
    tower = json.loads((broken / "clip" / "config.json").read_text())
    (broken / "clip" / "config.json").write_text(json.dumps({**tower, "image_size": 560000}))
    with pytest.raises(CheckpointError, match=r"implies .*vision tower [\d,]+.*GiB") as err:
        DragonflyForCausalLM.from_pretrained(str(broken))
    # 40,000 x 40,000 patch positions of width 32: the tower alone is 51 billion parameters.
    assert "vision tower 51,2" in str(err.value)


def test_model_larger_than_free_memory_names_both_sizes(broken, nothing_built, monkeypatch):
    monkeypatch.setattr(loading, "free_memory", lambda device, device_map: (1000, "the host"))
    params = sum(loading.parameter_counts(read_config(broken)).values())
    with pytest.raises(CheckpointError) as err:
        DragonflyForCausalLM.from_pretrained(str(broken), dtype="bfloat16")
    message = str(err.value)
    assert f"implies {params:,} parameters" in message
    assert f"{params * 2 / 2**30:,.1f} GiB in torch.bfloat16" in message
    assert "only 0.0 GiB is free on the host" in message


def test_more_layers_than_the_weights_hold_is_refused_before_building(
    broken, nothing_built, monkeypatch
):
    monkeypatch.setattr(loading, "free_memory", lambda device, device_map: None)  # unknown
    edit_text_config(broken, num_hidden_layers=100_000)
    with pytest.raises(CheckpointError, match=r"num_hidden_layers is 100,000.*hold 2 such"):
        DragonflyForCausalLM.from_pretrained(str(broken))


def test_free_memory_of_the_host_is_its_available_ram(monkeypatch):
    class Memory:
        available = 12345

    monkeypatch.setattr(loading.psutil, "virtual_memory", lambda: Memory())
    assert loading.free_memory(None, None) == (12345, "the host (available RAM)")
    assert loading.free_memory(torch.device("cpu"), None)[0] == 12345


def test_free_memory_of_gpus_comes_from_cuda(monkeypatch):
    class Memory:
        available = 1000

    monkeypatch.setattr(loading.psutil, "virtual_memory", lambda: Memory())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (7, 100))
    assert loading.free_memory(torch.device("cuda:1"), None) == (7, "cuda:1")
    assert loading.free_memory(None, "auto") == (7 + 7 + 1000, "the GPUs and the host together")


def text_variant(**changes) -> DragonflyConfig:
    """The embedded model's config with its text config changed, built as from config.json."""
    from dragonfly_eval.tiny.config import tiny_config

    data = tiny_config(300).to_dict()
    data["text_config"].update(changes)
    return DragonflyConfig.from_dict(data)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"attention_bias": True, "mlp_bias": True},
        {"tie_word_embeddings": True},
        {"num_key_value_heads": 4},
    ],
)
def test_parameter_counts_equal_the_built_model(changes):
    config = text_variant(**changes)
    model = DragonflyForCausalLM(config)
    counts = loading.parameter_counts(config)
    assert counts == {
        "vision tower": sum(p.numel() for p in model.image_encoder.parameters()),
        "projector": sum(p.numel() for p in model.vision_embed_tokens.parameters()),
        "language model": sum(p.numel() for p in model.language_model.parameters()),
    }


@pytest.mark.parametrize("version", [1, 2])
def test_parameter_counts_of_the_fixture_checkpoints(version, checkpoint_for, load_pair):
    checkpoint = checkpoint_for(version)
    model = load_pair(checkpoint)[0]
    assert sum(loading.parameter_counts(read_config(checkpoint)).values()) == sum(
        p.numel() for p in model.parameters()
    )
