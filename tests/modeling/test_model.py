"""The model end to end on the tiny checkpoints: zoom ablations, batches, mixed samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

ZOOMS = {1: ("select", "full", "low+medium", "low"), 2: ("full", "low+medium", "low")}
# Image block positions per zoom (see test_sequence.py for how they follow from the spec).
POSITIONS = {
    (2, "full"): 2098,
    (2, "low+medium"): 730,
    (2, "low"): 578,
    (1, "select"): 867,
    (1, "full"): 1479,
    (1, "low+medium"): 255,
    (1, "low"): 51,
}
PROMPT = "<|start_header_id|>user<|end_header_id|>\n\nWhat is it?<|eot_id|>"


def noise_image(seed: int, size: tuple[int, int] = (120, 90)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def checkpoint(request, checkpoint_for):
    return checkpoint_for(request.param)


def test_every_zoom_runs_end_to_end_with_its_sequence_length(checkpoint, load_pair):
    version = load_pair(checkpoint)[0].config.version
    last_logits = {}
    for zoom in ZOOMS[version]:
        model, processor = load_pair(checkpoint, zoom)
        assert model.zoom == processor.zoom == zoom
        inputs = processor(text=[PROMPT], images=[noise_image(0)])
        length = inputs["input_ids"].shape[1]
        assert length == POSITIONS[(version, zoom)] + len(processor.text_ids(PROMPT))
        with torch.no_grad():
            logits = model(**inputs).logits
        assert logits.shape == (1, length, model.config.text_config.vocab_size)
        assert torch.isfinite(logits).all()
        last_logits[zoom] = logits[0, -1]
    # Each setting shows the model different visual tokens.
    zooms = list(last_logits)
    for a, b in zip(zooms, zooms[1:], strict=False):
        assert not torch.allclose(last_logits[a], last_logits[b])


def test_model_refuses_an_unknown_zoom(v2_checkpoint):
    from dragonfly_eval import DragonflyForCausalLM

    with pytest.raises(ValueError, match="choose from"):
        DragonflyForCausalLM.from_pretrained(str(v2_checkpoint), zoom="select")


# v1 at zoom "low" lays out every crop as 50 placeholders + 1 separator, exactly like one v1
# crop of any other zoom; only the processor's `images_per_sample` tells the model that a
# 29-crop sample is one image, not 29.
MISMATCHED = [
    pytest.param(
        version, processor_zoom, model_zoom, id=f"v{version}-{processor_zoom}-to-{model_zoom}"
    )
    for version, zooms in ZOOMS.items()
    for processor_zoom in zooms
    for model_zoom in zooms
    if processor_zoom != model_zoom
]


@pytest.mark.parametrize(("version", "processor_zoom", "model_zoom"), MISMATCHED)
def test_mismatched_zoom_between_processor_and_model_is_a_clear_error(
    version, processor_zoom, model_zoom, checkpoint_for, load_pair
):
    checkpoint = checkpoint_for(version)
    processor = load_pair(checkpoint, processor_zoom)[1]
    model = load_pair(checkpoint, model_zoom)[0]
    inputs = processor(text=[PROMPT], images=[noise_image(1, (40, 30))])
    with pytest.raises(ValueError, match="zoom"), torch.no_grad():
        model(**inputs)


@pytest.mark.parametrize(("version", "zoom"), [(1, "select"), (2, "low+medium")])
def test_batch_rows_equal_single_runs(version, zoom, checkpoint_for, load_pair):
    # Mixed samples in one left-padded batch: two images, none, one image. Each row's result
    # must not depend on its neighbours or on the padding.
    model, processor = load_pair(checkpoint_for(version), zoom)
    texts = [PROMPT, PROMPT + " text only, and longer", "<|start_header_id|>user"]
    images = [[noise_image(2), noise_image(3, (60, 200))], None, noise_image(4, (300, 50))]
    batch = processor(text=texts, images=images)
    with torch.no_grad():
        batch_logits = model(**batch).logits[:, -1]
    generated = model.generate(**batch, max_new_tokens=4, do_sample=False)
    width = batch["input_ids"].shape[1]
    assert generated.shape == (3, width + 4)
    assert torch.equal(generated[:, :width], batch["input_ids"])
    for row, (text, image) in enumerate(zip(texts, images, strict=True)):
        single = processor(text=[text], images=[image])
        with torch.no_grad():
            logits = model(**single).logits[0, -1]
        torch.testing.assert_close(batch_logits[row], logits, atol=1e-4, rtol=0)
        single_new = model.generate(**single, max_new_tokens=4, do_sample=False)
        assert (
            generated[row, width:].tolist()
            == single_new[0, single["input_ids"].shape[1] :].tolist()
        )


def test_stacked_image_tensor_input_equals_the_reference_list(v1_pair):
    model, processor = v1_pair
    images = [[noise_image(5), noise_image(6)], noise_image(7)]
    inputs = processor(text=[PROMPT, PROMPT], images=images)
    n_crops = model.crops_per_image()
    stacked = torch.cat(inputs["image_patches"]).view(
        3, n_crops, *inputs["image_patches"][0].shape[1:]
    )
    with torch.no_grad():
        from_list = model(**inputs).logits
        from_tensor = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            image_patches=stacked,
            image_patches_indices=inputs["image_patches_indices"],
            images_per_sample=[2, 1],
        ).logits
    torch.testing.assert_close(from_tensor, from_list, atol=1e-5, rtol=0)


def test_the_second_image_of_a_sample_matters(v1_pair):
    model, processor = v1_pair
    a = processor(text=[PROMPT], images=[[noise_image(8), noise_image(9)]])
    b = processor(text=[PROMPT], images=[[noise_image(8), noise_image(10)]])
    with torch.no_grad():
        assert not torch.allclose(model(**a).logits[0, -1], model(**b).logits[0, -1])


def test_bfloat16_weights_load_and_run(v1_checkpoint):
    from dragonfly_eval import DragonflyForCausalLM, DragonflyProcessor

    model = DragonflyForCausalLM.from_pretrained(str(v1_checkpoint), dtype=torch.bfloat16)
    processor = DragonflyProcessor.from_pretrained(str(v1_checkpoint))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    inputs = processor(text=[PROMPT], images=[noise_image(11)])
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.isfinite(logits.float()).all()
