"""A task whose images hold more than 8 bits per value is named once in a warning: they are
clipped to 0..255 as the reference does, so a 16-bit scan is seen as mostly white."""

from __future__ import annotations

import numpy as np
import pytest
from harness_kit import Requests, noise_image
from PIL import Image

from dragonfly_eval.harness.model import Dragonfly


def scan(seed: int) -> Image.Image:
    """A 16-bit grey image (mode I;16) of values up to 4095, as a medical scan stores them."""
    values = np.random.default_rng(seed).integers(0, 4096, (48, 64), dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    return image


def as_float(image: Image.Image) -> Image.Image:
    return image.convert("F")


@pytest.fixture(scope="module")
def harness() -> Dragonfly:
    return Dragonfly(pretrained="dragonfly-tiny", device="cpu", zoom="low", batch_size=2)


def mode_warnings(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("WARNING") and "PIL mode" in line]


class OtherTask(Requests):
    task = "other_check"


def test_two_16_bit_images_in_a_task_give_one_warning_naming_mode_and_task(harness, log_lines):
    kit, other = Requests(), OtherTask()
    scans = [kit.doc([scan(1)]), kit.doc([scan(2)]), kit.doc([noise_image(3)])]
    floats = [other.doc([as_float(scan(4))])]
    harness.task_dict = {
        kit.task: {kit.split: kit.docs},
        other.task: {other.split: other.docs},
    }
    requests = [kit.gen("What is shown?", d, max_new_tokens=1) for d in scans]
    requests += [other.gen("What is shown?", d, max_new_tokens=1) for d in floats]
    assert len(harness.generate_until(requests)) == 4
    harness.loglikelihood([kit.ll("What is shown?", " a scan", scans[0])])  # the same task again
    warned = mode_warnings(log_lines)
    assert len(warned) == 2, warned
    assert "task=harness_check" in warned[0] and "mode I;16;" in warned[0]
    assert "task=other_check" in warned[1] and "mode F;" in warned[1]
    assert "clips values above 255 to white" in warned[0]


def test_8_bit_images_give_no_mode_warning(harness, kit, log_lines):
    kit.attach(harness)
    images = [noise_image(5), noise_image(6).convert("L"), noise_image(7).convert("P")]
    requests = [kit.gen("What is shown?", kit.doc([im]), max_new_tokens=1) for im in images]
    harness.generate_until(requests)
    assert mode_warnings(log_lines) == []
