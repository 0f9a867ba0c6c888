"""The engine on the device path (`device_resize=True`, forced on the CPU): the prefetch threads
only decode, each distinct image is uploaded once and resized on the device, and answers and
scores equal the Pillow path's."""

from __future__ import annotations

import pytest
from image_kit import noise_image

from dragonfly_eval.engine import Engine, EngineSettings, GenRequest, GenSettings, ScoreRequest
from dragonfly_eval.modeling import DragonflyProcessor, image_processing, zoom

SIZES = [(64, 48), (40, 90), (500, 30)]  # none is the crop size: every image is resized


def _images():
    """Three distinct images, each asked about twice, plus one two-image request."""
    distinct = [noise_image(i, size) for i, size in enumerate(SIZES)]
    return distinct, [[distinct[i % 3]] for i in range(6)] + [[distinct[0], distinct[2]]]


def _requests(per_request):
    settings = GenSettings(max_new_tokens=5)
    gen = [GenRequest(f"Question {i}?", ims, settings, "t", i) for i, ims in enumerate(per_request)]
    scored = [
        ScoreRequest(f"Question {i}?", " a cat" * (1 + i % 2), ims, "t", i)
        for i, ims in enumerate(per_request)
    ]
    return gen, scored


def _counting(calls: list, function):
    """`function` that records the positional arguments of each call in `calls`."""

    def run(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return run


def test_forced_device_path_gives_the_pillow_answers_and_scores(tiny_parts, monkeypatch):
    model, pillow_processor = tiny_parts
    distinct, per_request = _images()
    gen, scored = _requests(per_request)
    encoded: list[tuple] = []  # one entry per vision call: (pixels,)
    monkeypatch.setattr(model, "encode_images", _counting(encoded, model.encode_images))

    def run(processor):
        encoded.clear()
        engine = Engine(model, processor, EngineSettings(batch_size=3, progress=False))
        answers, scores = engine.generate(gen), engine.score(scored)
        return answers, scores, sum(len(pixels) for (pixels,) in encoded)

    assert not pillow_processor.image_processor.resizes_on_device("cpu")
    want_answers, want_scores, want_encoded = run(pillow_processor)

    processor = DragonflyProcessor.from_pretrained("dragonfly-tiny", zoom="low")
    processor.image_processor.device_resize = True
    resized, pillow_resized, uploads = [], [], []
    monkeypatch.setattr(zoom, "resize_bicubic", _counting(resized, zoom.resize_bicubic))
    monkeypatch.setattr(zoom, "resize_level", _counting(pillow_resized, zoom.resize_level))
    upload = image_processing.upload_rgb
    monkeypatch.setattr(image_processing, "upload_rgb", _counting(uploads, upload))
    answers, scores, n_encoded = run(processor)

    assert answers == want_answers
    assert [g for _, g in scores] == [g for _, g in want_scores]
    assert [x for x, _ in scores] == pytest.approx([x for x, _ in want_scores], abs=1e-5)
    # Reuse as on the Pillow path (the same images encoded), each encoded image uploaded and
    # resized once (zoom=low: one level) on the device path, never by Pillow.
    assert n_encoded == want_encoded >= len(distinct)
    assert len(uploads) == len(resized) == n_encoded
    assert pillow_resized == []
