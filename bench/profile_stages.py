"""Where a batch's time goes: the harness's per-batch work run stage by stage and timed.

Used by `bench/throughput.py --profile`. Each batch is prepared on the CPU (tokenized layout,
image decode, and on the CPU the Pillow crops), copied to the device, preprocessed there (on a GPU
the device path: zoom resizes, cutting, normalization), encoded (vision tower, then pooling and
projector), and answered greedily (prefill, decode steps). On a GPU each device stage is timed
with CUDA events on the stream (the span from its first launch to its last kernel's end, so gaps
inside a stage count as busy: the busy fraction is an upper bound); on the CPU with the wall
clock. "waiting" is the batch's wall time not covered by a stage: the GPU idles there. The stages
run one after the other (no prefetch overlap, no image or prefix cache: one question per image),
so the profile shows the work a batch needs; throughput.py compares it with the harness's wall time.
"""

from __future__ import annotations

import io
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from PIL import Image

from dragonfly_eval.modeling import DragonflyForCausalLM
from dragonfly_eval.modeling.image_processing import to_device, upload_rgb
from dragonfly_eval.modeling.processing import DragonflyProcessor
from dragonfly_eval.modeling.zoom import to_rgb, zoom_crops_tensor

CPU_STAGES = ("CPU preparation",)
DEVICE_STAGES = (
    "host-to-device copy",
    "device preprocessing",
    "vision tower",
    "projector/pooling",
    "prefill",
    "decode",
)
STAGES = (*CPU_STAGES, *DEVICE_STAGES, "waiting")


class StageClock:
    """Spans of named stages within one batch: CUDA events on a GPU, the wall clock on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.spans: dict[str, list[tuple]] = defaultdict(list)

    def now(self, on_device: bool = True):
        """A time mark: a recorded CUDA event for device stages on a GPU, else perf_counter."""
        if self.cuda and on_device:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    @contextmanager
    def span(self, stage: str) -> Iterator[None]:
        """Time the block as `stage` (a CPU stage by the wall clock, even on a GPU)."""
        on_device = stage in DEVICE_STAGES
        start = self.now(on_device)
        yield
        self.spans[stage].append((start, self.now(on_device)))

    def seconds(self) -> dict[str, float]:
        """Seconds per stage (call after the device is synchronized)."""
        return {
            stage: sum(
                end - start if isinstance(start, float) else start.elapsed_time(end) / 1e3
                for start, end in pairs
            )
            for stage, pairs in self.spans.items()
        }


@contextmanager
def stage_hooks(model: DragonflyForCausalLM, clock: StageClock) -> Iterator[None]:
    """Time the tower and every language-model forward (prefill: more than one position; decode:
    one) through module hooks, so `encode_images` and `generate` run unchanged."""
    open_spans: list[tuple[str, object]] = []

    def tower_start(module, args):
        open_spans.append(("vision tower", clock.now()))

    def lm_start(module, args, kwargs):
        inputs = kwargs.get("inputs_embeds")
        inputs = kwargs.get("input_ids") if inputs is None else inputs
        open_spans.append(("prefill" if inputs.shape[1] > 1 else "decode", clock.now()))

    def finish(module, args, output):
        stage, start = open_spans.pop()
        clock.spans[stage].append((start, clock.now()))

    handles = [
        model.image_encoder.register_forward_pre_hook(tower_start),
        model.image_encoder.register_forward_hook(finish),
        model.language_model.register_forward_pre_hook(lm_start, with_kwargs=True),
        model.language_model.register_forward_hook(finish),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def encoded_images(images: list[Image.Image]) -> list[bytes]:
    """The images as JPEG files, so that preparation includes decoding as in an evaluation."""
    files = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=95)
        files.append(buffer.getvalue())
    return files


def decode(file: bytes) -> Image.Image:
    """A decoded RGB image from JPEG bytes."""
    image = Image.open(io.BytesIO(file))
    image.load()
    return image


@torch.no_grad()
def profile_batch(
    model: DragonflyForCausalLM,
    processor: DragonflyProcessor,
    prompt: str,
    files: list[bytes],
    new_tokens: int,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, float]:
    """Seconds per stage of one batch (`prompt` about each image), its wall time ("wall") and
    its number of requests ("requests")."""
    images = processor.image_processor
    on_device = images.resizes_on_device(device)
    clock = StageClock(device)
    sync(device)
    start = time.perf_counter()
    with clock.span("CPU preparation"):
        layout = processor.layout([prompt] * len(files), [1] * len(files))
        decoded = [to_rgb(decode(f)) for f in files]
        host = [None if on_device else torch.from_numpy(images.crops(im)) for im in decoded]
    with clock.span("host-to-device copy"):
        layout = {k: to_device(v, device) for k, v in layout.items()}
        if on_device:
            uploaded = [upload_rgb(im, device) for im in decoded]  # [H, W, 3] uint8 each
        else:
            uploaded = [to_device(crops, device) for crops in host]  # [n_crops, se, se, 3]
    with clock.span("device preprocessing"):
        levels = (images.geometry, images.levels)
        crops = [zoom_crops_tensor(p, *levels) if on_device else p for p in uploaded]
        pixels = images.normalize(torch.cat(crops), dtype)  # [B * n_crops, 3, se, se]
    with stage_hooks(model, clock):
        with clock.span("projector/pooling"):  # the tower's own spans are taken out below
            visual = model.encode_images(pixels.view(len(files), -1, *pixels.shape[1:]))
        model.generate(
            input_ids=layout["input_ids"],
            attention_mask=layout["attention_mask"],
            image_patches_indices=layout["image_patches_indices"],
            visual_embeds=visual,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
        )
    sync(device)
    wall = time.perf_counter() - start
    seconds = clock.seconds()
    seconds["projector/pooling"] -= seconds.get("vision tower", 0.0)
    covered = sum(seconds.get(stage, 0.0) for stage in (*CPU_STAGES, *DEVICE_STAGES))
    seconds["waiting"] = max(wall - covered, 0.0)  # launches, generation bookkeeping
    seconds["wall"] = wall
    seconds["requests"] = len(files)
    return seconds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def print_profile(
    batches: list[dict[str, float]], batch_size: int, flops: dict[str, float], gpu: bool
) -> float:
    """The breakdown table (mean per batch, share of wall time, TFLOP/s per stage); returns the
    device busy fraction."""
    wall = statistics.mean(b["wall"] for b in batches)
    timer = "CUDA events" if gpu else "wall clock (CPU: every stage runs on the host)"
    print(f"profile: {len(batches)} batches of {batch_size}, stage times by {timer}")
    print(f"{'stage':22} {'ms/batch':>9} {'share':>6} {'TFLOP/s':>8}")
    for stage in STAGES:
        seconds = statistics.mean(b.get(stage, 0.0) for b in batches)
        rate = flops.get(stage, 0.0) * batch_size / seconds / 1e12 if seconds > 0 else 0.0
        rate_text = f"{rate:8.3g}" if stage in flops else f"{'-':>8}"
        print(f"{stage:22} {seconds * 1e3:9.1f} {seconds / wall:6.1%} {rate_text}")
    print(f"{'batch wall time':22} {wall * 1e3:9.1f} {1:6.0%}")
    busy = statistics.mean(
        sum(b.get(stage, 0.0) for stage in DEVICE_STAGES) / b["wall"] for b in batches
    )
    print(f"device busy fraction (stage spans / wall): {busy:.1%}")
    return busy


def gpu_path_cpu_cost(
    processor: DragonflyProcessor, files: list[bytes], device: torch.device
) -> float:
    """CPU seconds per image of the device path: JPEG decode, RGB conversion, the one upload and
    the launches of the device work. The device is synchronized between images, outside the
    timing, so that no launch waits for a full queue."""
    images = processor.image_processor
    costs = []
    for file in files:
        sync(device)
        start = time.perf_counter()
        images.crops_on(decode(file), device)
        costs.append(time.perf_counter() - start)
    sync(device)
    return statistics.median(costs)
