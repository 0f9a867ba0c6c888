"""Token layout: image blocks first, placeholder indices, padding, position ids."""

from __future__ import annotations

import pytest
import torch

from dragonfly_eval.modeling.geometry import crop_token_counts
from dragonfly_eval.modeling.sequence import (
    image_block,
    pad_batch,
    position_ids_from_mask,
    sample_layout,
)

P, S = 900, 901  # placeholder and separator ids for the pure-function tests


# Positions per image, worked out from the spec: v2 = 577 + 40 x 37 visual tokens plus one
# separator per crop; v1 = kept crops x (50 + 1).
POSITIONS = {
    (2, "full"): 2098,  # 577 + 1 + 40 x (37 + 1)
    (2, "low+medium"): 730,  # 577 + 1 + 4 x (37 + 1)
    (2, "low"): 578,
    (1, "select"): 867,  # (1 + 4 + 12) x 51
    (1, "full"): 1479,  # 29 x 51
    (1, "low+medium"): 255,  # 5 x 51
    (1, "low"): 51,
}
GRID = {1: 7, 2: 24}


@pytest.mark.parametrize(("version", "zoom"), list(POSITIONS))
def test_image_block_length_per_zoom(version, zoom):
    counts = crop_token_counts(version, zoom, GRID[version])
    block = image_block(counts, P, S)
    assert len(block) == POSITIONS[(version, zoom)]
    assert block.count(S) == len(counts)


def test_image_block_puts_one_separator_after_each_crop():
    assert image_block([3, 2, 1], P, S) == [P, P, P, S, P, P, S, P, S]


def test_v2_block_separators_follow_the_low_crop_then_every_37_tokens():
    block = image_block(crop_token_counts(2, "full", 24), P, S)
    separators = [i for i, t in enumerate(block) if t == S]
    assert separators == [577] + [577 + 38 * k for k in range(1, 41)]


def test_single_image_sample_indexes_placeholders_in_order():
    ids, indices = sample_layout([7, 8], 1, [2, 1], P, S)
    assert ids == [P, P, S, P, S, 7, 8]
    assert indices == [0, 1, -1, 2, -1, -1, -1]


def test_two_image_sample_gets_two_blocks_with_continuing_indices():
    ids, indices = sample_layout([7], 2, [2, 1], P, S)
    assert ids == [P, P, S, P, S, P, P, S, P, S, 7]
    assert indices == [0, 1, -1, 2, -1, 3, 4, -1, 5, -1, -1]


def test_text_only_sample_has_no_block():
    ids, indices = sample_layout([7, 8, 9], 0, [2, 1], P, S)
    assert ids == [7, 8, 9]
    assert indices == [-1, -1, -1]


def test_left_padding():
    batch = pad_batch([[1, 2, 3], [4]], [[0, -1, -1], [-1]], pad_id=0, side="left")
    assert batch["input_ids"].tolist() == [[1, 2, 3], [0, 0, 4]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["image_patches_indices"].tolist() == [[0, -1, -1], [-1, -1, -1]]


def test_right_padding():
    batch = pad_batch([[1, 2, 3], [4]], [[0, 1, -1], [5]], pad_id=9, side="right")
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["image_patches_indices"].tolist() == [[0, 1, -1], [5, -1, -1]]


def test_unknown_padding_side_is_refused():
    with pytest.raises(ValueError, match="side"):
        pad_batch([[1]], [[-1]], pad_id=0, side="middle")


def test_position_ids_skip_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids_from_mask(mask).tolist() == [[1, 1, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_position_ids_with_right_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    assert position_ids_from_mask(mask).tolist() == [[0, 1, 2, 1, 1]]


# --- the processor's layout on the fixture tokenizers ------------------------------------


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def processor_of(request, checkpoint_for):
    from dragonfly_eval import DragonflyProcessor

    checkpoint = checkpoint_for(request.param)
    return lambda zoom=None: DragonflyProcessor.from_pretrained(str(checkpoint), zoom=zoom)


ZOOMS = {1: ("select", "full", "low+medium", "low"), 2: ("full", "low+medium", "low")}


def test_processor_layout_per_zoom_puts_the_image_block_first(processor_of):
    version = processor_of().version
    for zoom in ZOOMS[version]:
        processor = processor_of(zoom)
        prompt = "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        text = processor.text_ids(prompt)
        assert text[0] == processor.tokenizer.bos_token_id
        batch = processor.layout([prompt], [1])
        ids = batch["input_ids"][0].tolist()
        block = POSITIONS[(version, zoom)]
        assert ids[block:] == text
        assert set(ids[:block]) == {processor.placeholder_id, processor.separator_id}
        assert ids[block - 1] == processor.separator_id
        indices = batch["image_patches_indices"][0].tolist()
        n_visual = sum(processor.crop_token_counts())
        assert [i for i in indices if i >= 0] == list(range(n_visual))


def test_processor_output_for_multi_image_and_text_only_samples(processor_of):
    from PIL import Image

    processor = processor_of("low")
    images = [Image.new("RGB", (50, 40), c) for c in ("red", "blue")]
    out = processor(text=["two", "none", "one"], images=[images, None, images[0]])
    se = processor.image_processor.geometry.crop_size
    assert [tuple(p.shape) for p in out["image_patches"]] == [
        (2, 3, se, se),
        (0, 3, se, se),
        (1, 3, se, se),
    ]
    block = len(image_block(processor.crop_token_counts(), P, S))
    per_image = sum(processor.crop_token_counts())
    lengths = out["attention_mask"].sum(1).tolist()
    text_lengths = [len(processor.text_ids(t)) for t in ("two", "none", "one")]
    assert lengths == [2 * block + text_lengths[0], text_lengths[1], block + text_lengths[2]]
    indices = out["image_patches_indices"]
    assert indices.shape[1] == out["input_ids"].shape[1] + 10  # the reference's generation slack
    assert [row[row >= 0].tolist() for row in indices] == [
        list(range(2 * per_image)),
        [],
        list(range(per_image)),
    ]


def test_processor_pads_left_for_generation_and_right_for_scoring(processor_of):
    processor = processor_of("low")
    prompts = ["a much longer prompt than the other one", "b"]
    left = processor(text=prompts, images=None, is_generate=True)
    right = processor(text=prompts, images=None, is_generate=False)
    assert left["attention_mask"][1, 0] == 0 and left["attention_mask"][1, -1] == 1
    assert right["attention_mask"][1, 0] == 1 and right["attention_mask"][1, -1] == 0
    assert left["input_ids"][1, 0] == processor.tokenizer.eos_token_id
    assert right["image_patches_indices"].shape == right["input_ids"].shape


def test_text_is_truncated_to_half_the_max_length(processor_of):
    processor = processor_of("low")
    assert len(processor.text_ids("word " * 500, max_length=64)) == 31


def test_processor_refuses_mismatched_image_entries(processor_of):
    processor = processor_of("low")
    with pytest.raises(ValueError, match="image entries"):
        processor(text=["a", "b"], images=[None])
