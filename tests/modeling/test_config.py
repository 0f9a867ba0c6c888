"""The config is the single source of truth: read complete, validated, and what the code reads;
the processor is an HF processor built from it; a saved model loads back bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

from dragonfly_eval import DragonflyConfig, DragonflyForCausalLM, DragonflyProcessor
from dragonfly_eval.modeling.checkpoint_files import CheckpointError
from dragonfly_eval.modeling.loading import read_config

PROMPT = "<|start_header_id|>user<|end_header_id|>\n\nWhat is it?<|eot_id|>"


def noise_image(seed: int, size: tuple[int, int] = (90, 70)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def checkpoint(request, checkpoint_for) -> Path:
    return checkpoint_for(request.param)


def settings(config: DragonflyConfig) -> dict:
    data = config.to_dict()
    data.pop("_name_or_path", None)
    return data


def test_auto_config_of_a_released_folder_is_complete(checkpoint):
    config = AutoConfig.from_pretrained(str(checkpoint))
    tower = json.loads((checkpoint / "clip" / "config.json").read_text())
    assert isinstance(config, DragonflyConfig)
    assert "version" not in json.loads((checkpoint / "config.json").read_text())
    assert config.vision_config.hidden_size == tower["hidden_size"]
    assert config.crop_size == tower["image_size"]
    assert config.version == (1 if tower["image_size"] == 224 else 2)
    assert config.zoom == ("select" if config.version == 1 else "full")
    assert settings(config) == settings(read_config(checkpoint))
    assert settings(DragonflyConfig.from_pretrained(str(checkpoint))) == settings(config)


def test_declared_version_is_honoured_over_the_tower_geometry(v2_checkpoint):
    data = read_config(v2_checkpoint).to_dict()
    as_v1 = DragonflyConfig.from_dict({**data, "version": 1, "zoom": None, "high_grids": None})
    assert as_v1.version == 1 and as_v1.zoom == "select"
    assert as_v1.crops_per_image() == 29
    assert read_config(v2_checkpoint).crops_per_image() == 41


@pytest.mark.parametrize(
    ("version", "changes", "named"),
    [
        (2, {"pool_kernel": 5}, "pool_kernel"),
        (2, {"zoom": "select"}, "zoom='select'"),
        (2, {"crop_size": 300}, "crop_size 300"),
        (2, {"image_std": [0.0, 1.0, 1.0]}, "image_std"),
        (2, {"vision_chunk_size": 0}, "vision_chunk_size"),
        (2, {"separator_token": "<|reserved_special_token_0|>"}, "separator_token"),
        (2, {"medium_grids": [[2, 2], [1, 3]]}, "same crop count"),
        (2, {"vision_feature_layer": 9}, "vision_feature_layer"),
        (1, {"v1_top_k": 7}, "v1_top_k"),
        (1, {"v1_block": 5}, "v1_block"),
    ],
)
def test_validate_names_each_setting_that_does_not_fit(version, changes, named, checkpoint_for):
    folder = checkpoint_for(version)
    config = DragonflyConfig.from_dict({**read_config(folder).to_dict(), **changes})
    with pytest.raises(ValueError, match="invalid Dragonfly config") as err:
        config.validate()
    assert named in str(err.value)
    with pytest.raises(ValueError, match=named.split()[0]):
        DragonflyForCausalLM(config)


def test_a_checkpoint_with_a_bad_setting_is_refused_naming_its_config(tmp_path, v2_checkpoint):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    data = json.loads((v2_checkpoint / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**data, "pool_kernel": 5}))
    (folder / "clip").symlink_to(v2_checkpoint / "clip")
    with pytest.raises(
        CheckpointError, match=r"config\.json: invalid Dragonfly config.*pool_kernel"
    ):
        read_config(folder)


def model_and_processor(folder: Path, **changes):
    """The fixture model and processor with config settings changed."""
    reference = DragonflyForCausalLM.from_pretrained(str(folder))
    config = DragonflyConfig.from_dict({**reference.config.to_dict(), **changes})
    model = DragonflyForCausalLM(config).eval()
    model.load_state_dict(reference.state_dict())
    tokenizer = DragonflyProcessor.from_pretrained(str(folder)).tokenizer
    return model, DragonflyProcessor.for_config(config, tokenizer)


def last_logits(model, processor) -> torch.Tensor:
    inputs = processor(text=[PROMPT], images=[noise_image(0)])
    with torch.no_grad():
        return model(**inputs).logits[0, -1]


@pytest.mark.parametrize(
    "changes",
    [
        {"pool_kernel": 2},
        {"vision_feature_layer": -1},
        {"zoom": "low+medium"},
        {"image_mean": [0.5, 0.5, 0.5]},
        {"image_token": "<|reserved_special_token_3|>"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_the_model_and_processor_read_their_settings_from_the_config(v2_checkpoint, changes):
    base_model, base_processor = model_and_processor(v2_checkpoint)
    model, processor = model_and_processor(v2_checkpoint, **changes)
    if "pool_kernel" in changes:
        assert processor.crop_token_counts()[:2] == [577, 1 + 12 * 12]
    if "image_token" in changes:
        assert processor.placeholder_id != base_processor.placeholder_id
        assert (
            processor.placeholder_id
            in processor(text=[PROMPT], images=[noise_image(0)])["input_ids"]
        )
        return  # the same visual embeddings, placed by index: only the token id differs
    assert not torch.equal(last_logits(model, processor), last_logits(base_model, base_processor))


def test_auto_processor_of_a_released_folder_round_trips(checkpoint, tmp_path):
    processor = AutoProcessor.from_pretrained(str(checkpoint))
    assert isinstance(processor, DragonflyProcessor)
    assert processor.zoom == read_config(checkpoint).zoom
    processor.save_pretrained(tmp_path)
    again = AutoProcessor.from_pretrained(str(tmp_path))
    assert isinstance(again, DragonflyProcessor)
    assert not (tmp_path / "config.json").exists()  # read back from the processor's own files
    a = processor(text=[PROMPT, "hi"], images=[noise_image(1), None])
    b = again(text=[PROMPT, "hi"], images=[noise_image(1), None])
    for key in ("input_ids", "attention_mask", "image_patches_indices"):
        assert torch.equal(a[key], b[key]), key
    assert all(
        torch.equal(x, y) for x, y in zip(a["image_patches"], b["image_patches"], strict=True)
    )
    low = DragonflyProcessor.from_pretrained(str(tmp_path), zoom="low")
    assert low.zoom == "low" and len(low.crop_token_counts()) == 1


def test_save_pretrained_then_from_pretrained_reproduces_the_logits(
    checkpoint, tmp_path, load_pair
):
    model, processor = load_pair(checkpoint)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    again_processor = AutoProcessor.from_pretrained(str(tmp_path))
    assert isinstance(again, DragonflyForCausalLM)
    assert settings(again.config) == settings(model.config)
    inputs = processor(text=[PROMPT], images=[noise_image(2)])
    with torch.no_grad():
        expected = model(**inputs).logits
        found = again(**again_processor(text=[PROMPT], images=[noise_image(2)])).logits
    assert torch.equal(found, expected)


def test_torch_dtype_is_honoured_with_its_deprecation(v2_checkpoint):
    with pytest.warns(FutureWarning, match="torch_dtype is deprecated"):
        model = DragonflyForCausalLM.from_pretrained(str(v2_checkpoint), torch_dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_unknown_from_pretrained_arguments_are_refused(v2_checkpoint):
    with pytest.raises(TypeError, match="nonsense"):
        DragonflyForCausalLM.from_pretrained(str(v2_checkpoint), nonsense=1)


def test_the_processor_built_from_the_loaded_models_config_reads_no_config_file(
    v1_checkpoint, load_pair, monkeypatch
):
    from dragonfly_eval.modeling import processing

    model, reference = load_pair(v1_checkpoint, "low")

    def refuse(folder):
        raise AssertionError(f"{folder}/config.json was read again")

    monkeypatch.setattr(processing, "read_config", refuse)
    processor = DragonflyProcessor.from_pretrained(str(v1_checkpoint), config=model.config)
    assert processor.zoom == model.zoom == "low"
    assert processor.crop_token_counts() == reference.crop_token_counts()
