"""The fast paths give what the plain path gives: pixels, features, answers, log-likelihoods.

Fast paths: threaded level resizes (one image and several at once), the per-crop lookup-table
normalization, image reuse (embedding cache), prefix KV reuse, prefetch, and batching.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from lmms_eval.api.instance import Instance
from PIL import Image

from dragonfly_eval.harness.model import Dragonfly
from dragonfly_eval.modeling.geometry import v2_geometry
from dragonfly_eval.modeling.image_processing import DragonflyImageProcessor
from dragonfly_eval.modeling.zoom import zoom_crops

SIZES = [(64, 48), (50, 120), (300, 90)]


def _image(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [_image(size, seed) for seed, size in enumerate(SIZES)]


def test_threaded_crops_equal_sequential_crops(images):
    processor = DragonflyImageProcessor(geometry=v2_geometry(), zoom="full")
    with ThreadPoolExecutor(3) as pool:
        for image in images:
            plain = zoom_crops(image, processor.geometry, processor.levels, pool=None)
            assert np.array_equal(zoom_crops(image, processor.geometry, pool=pool), plain)
            assert np.array_equal(processor.crops(image), plain)
    many = processor.crops_many(images)
    for image, crops in zip(images, many, strict=True):
        assert np.array_equal(crops, zoom_crops(image, processor.geometry, pool=None))


def test_crops_many_keeps_image_order_with_mixed_modes(images):
    processor = DragonflyImageProcessor(geometry=v2_geometry(), zoom="low+medium")
    mixed = [images[0].convert("L"), images[1], images[2].convert("RGBA")]
    many = processor.crops_many(mixed)
    assert [c.shape[0] for c in many] == [5, 5, 5]
    for image, crops in zip(mixed, many, strict=True):
        assert np.array_equal(crops, processor.crops(image))


@pytest.mark.parametrize(("version", "zoom"), [(2, "full"), (2, "low+medium"), (1, "select")])
@pytest.mark.parametrize("threads", [1, 3])
def test_overlapped_pixels_equal_normalized_crops(images, version, zoom, threads):
    from dragonfly_eval.modeling.geometry import v1_geometry

    geometry = v2_geometry() if version == 2 else v1_geometry()
    processor = DragonflyImageProcessor(geometry, zoom, resize_threads=threads)
    for image in images:
        plain = processor.normalize(torch.from_numpy(processor.crops(image)))
        assert torch.equal(processor.pixels(image), plain)


def test_lookup_normalization_equals_clip_arithmetic(images):
    processor = DragonflyImageProcessor(geometry=v2_geometry(), zoom="full")
    crops = processor.crops(images[2])
    got = processor.normalize(torch.from_numpy(crops)).numpy()
    # CLIP's float steps: rescale in float64, cast to float32, (x - mean) / std in float32
    scaled = (crops.astype(np.float64) * (1 / 255)).astype(np.float32).transpose(0, 3, 1, 2)
    mean = np.asarray(processor.image_mean, dtype=np.float32)[None, :, None, None]
    std = np.asarray(processor.image_std, dtype=np.float32)[None, :, None, None]
    assert np.array_equal(got, (scaled - mean) / std)


def _requests(images: list[Image.Image]) -> tuple[list[Instance], list[Instance], dict]:
    questions = ["Is there a red circle in the image? Please answer yes or no.", "How many?"]
    docs = {}
    gen, scored = [], []
    gen_kwargs = {"until": ["\n\n"], "max_new_tokens": 5, "temperature": 0}
    visual = lambda doc: doc["images"]  # noqa: E731
    for q, question in enumerate(questions):
        for i, image in enumerate(images):
            doc_id = q * len(images) + i
            docs[doc_id] = {"images": [image]}
            meta = {"task": "t", "doc_id": doc_id, "repeats": 1}
            gen.append(
                Instance(
                    "generate_until",
                    (question + " x" * q, gen_kwargs, visual, doc_id, "t", "test"),
                    idx=0,
                    metadata=meta,
                )
            )
            scored.append(
                Instance(
                    "loglikelihood",
                    (question, " yes" if q % 2 else " no", visual, doc_id, "t", "test"),
                    idx=0,
                    metadata=meta,
                )
            )
    docs[len(docs)] = {"images": [images[0], images[1]]}  # two images: the plain path serves it
    meta = {"task": "t", "doc_id": len(docs) - 1, "repeats": 1}
    gen.append(
        Instance(
            "generate_until",
            ("Compare.", gen_kwargs, visual, len(docs) - 1, "t", "test"),
            idx=0,
            metadata=meta,
        )
    )
    return gen, scored, {"t": {"test": docs}}


def _run(images, **model_args):
    model = Dragonfly(pretrained="dragonfly-tiny", device="cpu", **model_args)
    gen, scored, task_dict = _requests(images)
    model.task_dict = task_dict
    return model, model.generate_until(gen), model.loglikelihood(scored)


@pytest.fixture(scope="module")
def plain(images):
    return _run(images, batch_size=1, image_cache=False, prefix_cache=False, prefetch=False)


@pytest.mark.parametrize(
    "model_args",
    [
        dict(batch_size=8, image_cache=True, prefix_cache=True, prefetch=True),
        dict(batch_size=3, image_cache=False, prefix_cache=True, prefetch=False),
        dict(batch_size=8, prefix_cache=True, prefix_cache_mb=0),  # nothing kept across batches
    ],
    ids=["all-on", "prefix-only", "prefix-no-budget"],
)
def test_fast_paths_give_plain_answers(images, plain, model_args):
    _, plain_answers, plain_scores = plain
    model, answers, scores = _run(images, **model_args)
    assert answers == plain_answers
    assert [s[1] for s in scores] == [s[1] for s in plain_scores]
    assert np.allclose([s[0] for s in scores], [s[0] for s in plain_scores], atol=1e-4, rtol=0)
    if model.engine.caches.prefixes is not None and model.engine.caches.prefixes.max_bytes > 0:
        assert model.engine.caches.prefills == len(images)  # once per image, for both request types


def prefix_bytes(model: Dragonfly, positions: int) -> int:
    """Bytes of one image prefix's float32 keys and values in the tiny model's KV cache."""
    text = model.model.config.text_config
    per_position = text.num_hidden_layers * 2 * text.num_key_value_heads * text.head_dim * 4
    return per_position * positions


def test_prefix_store_stays_within_budget(images):
    probe = Dragonfly(pretrained="dragonfly-tiny", device="cpu", batch_size=3)
    one = prefix_bytes(probe, positions=2098)  # the image block of zoom=full
    budget_mb = math.ceil(2.5 * one / 2**20)  # room for two prefixes, not three
    assert 2 * one <= budget_mb * 2**20 < 3 * one
    model = Dragonfly(
        pretrained="dragonfly-tiny", device="cpu", batch_size=3, prefix_cache_mb=budget_mb
    )
    gen, _, task_dict = _requests(images)
    model.task_dict = task_dict
    model.generate_until(gen[: len(images)])
    assert 0 < model.engine.caches.prefixes.bytes <= budget_mb * 2**20
    assert len(model.engine.caches.prefixes) == 2  # the oldest of three was evicted
