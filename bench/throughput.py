"""End-to-end throughput: the harness's batched path vs a reference-style loop, same model.

The full-size Dragonfly v2 architecture (Llama-3.1-8B, CLIP ViT-L/14-336) with random bf16 weights
built directly on the GPU (no download), N synthetic images of varied sizes, one short question
each, a fixed number of new tokens. Measured through the engine (`dragonfly_eval.engine.Engine`: request
preparation, threaded preprocessing, prefetch, batched vision and generation) and through a
reference-style loop (batch 1, CLIP image processor per crop, `generate` per sample).

Without a GPU it runs a scaled-down config on the CPU and says so.

    python bench/throughput.py [--n-images 64] [--batch-size 32] [--n-reference 16] [--new-tokens 8]
                               [--profile] [--engines hf,vllm]

`--profile` also runs the same images batch by batch through the stages of the harness's work
(bench/profile_stages.py) and prints where the time goes, with the device busy fraction and, on
a GPU, the CPU cost per image of the device preprocessing path.

`--engines hf,vllm` also runs the same workload on vLLM (`dragonfly_eval.vllm.engine`, the
engine of `--model dragonfly_vllm`; the model's config saved to a temporary folder, vLLM's own
random weights, `load_format=dummy`: every request generates exactly `--new-tokens` tokens, so
the weights' values do not change the work) and prints the samples/s of each engine and their
ratio, and on a GPU whether issue 22's targets are met (vLLM >= 2x the HF engine and >= 12
samples/s; printed, never asserted); then the image-reuse case (`--questions-per-image`
questions on each of `--reuse-images` images, interleaved, POPE asks 18 per image) on vLLM with
and without `enable_prefix_caching`, with the prefix cache's hits per request, and on the HF
engine (its image and prefix caches on); and the CPU time per image of vLLM's multimodal
processor cutting the crops (the plugin's `_call_hf_processor`). On the CPU the scaled-down
config has head_dim 32, the smallest vLLM's CPU attention takes; one vLLM engine is alive at a
time.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from common import synthetic_image
from preprocess import ReferencePreprocessor
from profile_stages import DEVICE_STAGES, encoded_images, gpu_path_cpu_cost, print_profile
from profile_stages import profile_batch as run_profile_batch
from reuse import QUESTIONS as REUSE_QUESTIONS

from dragonfly_eval.engine import Engine, EngineSettings, GenRequest, GenSettings
from dragonfly_eval.modeling import DragonflyForCausalLM, chat_prompt
from dragonfly_eval.modeling.configuration import DragonflyConfig
from dragonfly_eval.modeling.processing import DragonflyProcessor
from dragonfly_eval.modeling.sequence import image_block
from dragonfly_eval.modeling.tiny import build_tiny_tokenizer, v2_config

QUESTION = "Is there a red circle in the image? Please answer yes or no."
SIZES = [(640, 480), (1024, 768), (500, 375), (1280, 720), (800, 1200), (2500, 1700)]

FULL_TEXT = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
)
FULL_VISION = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16
)
CPU_TEXT = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=4096,
)
CPU_VISION = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=2)


def bench_config(full: bool) -> DragonflyConfig:
    """Dragonfly v2 geometry (336 px crops, patch 14) at full size or scaled down."""
    return v2_config(
        vision=FULL_VISION if full else CPU_VISION,
        text={**(FULL_TEXT if full else CPU_TEXT), "rms_norm_eps": 1e-5},
        image_encoder="bench",
    )


@torch.no_grad()
def build_model(config: DragonflyConfig, device: torch.device, dtype: torch.dtype):
    """Random weights created on the device in `dtype` (seconds, even at 8B parameters)."""
    for sub in (config.text_config, config.vision_config):
        sub._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = DragonflyForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    generator = torch.Generator(device=device).manual_seed(0)
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            param.zero_()
        elif "norm" in name:
            param.fill_(1.0)
        else:
            param.normal_(0.0, 0.02, generator=generator)
    model.language_model.generation_config.eos_token_id = [1]
    model.language_model.generation_config.pad_token_id = 1
    return model.eval()


def bench_processor(config: DragonflyConfig) -> DragonflyProcessor:
    """The v2 image processing with the embedded tiny tokenizer (same special tokens)."""
    return DragonflyProcessor.for_config(config, build_tiny_tokenizer())


@dataclass
class Flops:
    """Floating-point operations of one sample (multiply-add = 2)."""

    tower: float
    projector: float
    prefill: float
    decode: float

    @property
    def vision(self) -> float:
        return self.tower + self.projector

    @property
    def total(self) -> float:
        return self.vision + self.prefill + self.decode

    def per_stage(self) -> dict[str, float]:
        """FLOPs by the profile's stage names."""
        return {
            "vision tower": self.tower,
            "projector/pooling": self.projector,
            "prefill": self.prefill,
            "decode": self.decode,
        }


def count_flops(model: DragonflyForCausalLM, prompt_len: int, new_tokens: int) -> Flops:
    """Matrix FLOPs of vision (tower layers actually run), prefill and decode for one sample."""
    v = model.config.vision_config
    t = model.config.text_config
    n_crops = model.crops_per_image()
    tokens = (v.image_size // v.patch_size) ** 2 + 1
    layers_run = v.num_hidden_layers - 1  # the last tower layer is skipped (hidden_states[-2])
    per_token = 2 * (4 * v.hidden_size**2 + 2 * v.hidden_size * v.intermediate_size)
    attention = 2 * 2 * tokens * v.hidden_size
    tower = n_crops * tokens * layers_run * (per_token + attention)
    tower += n_crops * tokens * 2 * 3 * v.patch_size**2 * v.hidden_size  # patch embedding
    projector = 2 * sum(model.crop_token_counts()) * v.hidden_size * t.hidden_size
    d, kv = t.hidden_size, t.num_key_value_heads * (t.hidden_size // t.num_attention_heads)
    layer_params = 2 * d * d + 2 * d * kv + 3 * d * t.intermediate_size
    head = 2 * d * t.vocab_size

    def attn(queries: int, context: int) -> float:
        return 2 * 2 * queries * context * d * t.num_hidden_layers

    prefill = 2 * layer_params * t.num_hidden_layers * prompt_len + attn(prompt_len, prompt_len / 2)
    prefill += head
    decode = new_tokens * (2 * layer_params * t.num_hidden_layers + head)
    decode += sum(attn(1, prompt_len + i) for i in range(new_tokens))
    return Flops(tower, projector, prefill, decode)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def harness_run(engine: Engine, images, new_tokens: int) -> tuple[float, list[str]]:
    """Seconds for all images through the engine's `generate` (one question per image)."""
    settings = GenSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    requests = [GenRequest(QUESTION, [im], settings, "bench", i) for i, im in enumerate(images)]
    sync(engine.input_device)
    start = time.perf_counter()
    answers = engine.generate(requests)
    sync(engine.input_device)
    return time.perf_counter() - start, answers


@torch.no_grad()
def reference_run(model, processor, images, new_tokens: int, device: torch.device) -> float:
    """Seconds for the reference-style loop: per-crop CLIP preprocessing, one sample at a time."""
    reference = ReferencePreprocessor()
    sync(device)
    start = time.perf_counter()
    for image in images:
        layout = processor.layout([chat_prompt(QUESTION)], [1])
        pixels = reference(image).to(device)
        model.generate(
            input_ids=layout["input_ids"].to(device),
            attention_mask=layout["attention_mask"].to(device),
            image_patches=[pixels],
            image_patches_indices=layout["image_patches_indices"].to(device),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
        )
    sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-images", type=int, default=None, help="64 on a GPU, 8 on the CPU")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="32 on a GPU (measured best on one H100: 6.59 vs 6.37 samples/s at 16), 4 on the CPU",
    )
    parser.add_argument("--n-reference", type=int, default=None, help="samples in the loop")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--cpu", action="store_true", help="scaled-down CPU run even with a GPU")
    parser.add_argument(
        "--profile", action="store_true", help="also print the per-stage breakdown of a batch"
    )
    parser.add_argument(
        "--engines",
        type=parse_engines,
        default=("hf",),
        help="hf (default), or hf,vllm: the HF engine and vLLM side by side on one workload",
    )
    parser.add_argument("--reuse-images", type=int, default=2, help="images of the reuse case")
    parser.add_argument(
        "--questions-per-image", type=int, default=9, help="questions per image (POPE: 18)"
    )
    args = parser.parse_args(argv)

    gpu = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if gpu else "cpu")
    dtype = torch.bfloat16 if gpu else torch.float32
    n_images = args.n_images or (64 if gpu else 8)
    batch_size = args.batch_size or (32 if gpu else 4)
    n_reference = min(args.n_reference or (16 if gpu else 4), n_images)
    mode = (
        f"GPU {torch.cuda.get_device_name(device)}, full-size (Llama-3.1-8B + ViT-L/14-336), bf16"
        if gpu
        else "CPU, SCALED-DOWN config (no GPU): figures are not comparable with the GPU target"
    )
    print(f"mode: {mode}")

    start = time.perf_counter()
    config = bench_config(full=gpu)
    model = build_model(config, device, dtype)
    processor = bench_processor(config)
    sync(device)
    build_s = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model built in {build_s:.1f} s: {n_params / 1e6:,.0f} M parameters on {device}")

    harness = Engine(model, processor, EngineSettings(batch_size=batch_size))
    images = [synthetic_image(*SIZES[i % len(SIZES)], seed=1000 + i) for i in range(n_images)]
    warm = [synthetic_image(*SIZES[i % len(SIZES)], seed=i) for i in range(min(batch_size, 4))]
    harness_run(harness, warm, args.new_tokens)
    reference_run(model, processor, warm[:1], args.new_tokens, device)
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)

    ours_s, answers = harness_run(harness, images, args.new_tokens)
    peak_ours = torch.cuda.max_memory_allocated(device) / 2**30 if gpu else float("nan")
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)
    ref_s = reference_run(model, processor, images[:n_reference], args.new_tokens, device)
    peak_ref = torch.cuda.max_memory_allocated(device) / 2**30 if gpu else float("nan")

    prompt_len = processor.layout([chat_prompt(QUESTION)], [1])["input_ids"].shape[1]
    flops = count_flops(model, prompt_len, args.new_tokens)
    rows = []
    for name, seconds, n, peak in (
        ("harness (batched)", ours_s, n_images, peak_ours),
        ("reference loop", ref_s, n_reference, peak_ref),
    ):
        sps = n / seconds
        rows.append((name, sps))
        memory = f"peak GPU memory {peak:.1f} GiB" if gpu else "no GPU memory (CPU run)"
        print(
            f"{name:18} {n:4d} samples in {seconds:7.2f} s: {sps:7.3f} samples/s, "
            f"{sps * args.new_tokens:8.2f} new tokens/s, {sps * flops.total / 1e12:8.4g} TFLOP/s, "
            f"{memory}"
        )
    print(
        f"FLOPs per sample: vision {flops.vision / 1e12:.2f} T, prefill ({prompt_len} positions) "
        f"{flops.prefill / 1e12:.2f} T, decode ({args.new_tokens} tokens) "
        f"{flops.decode / 1e12:.3f} T; total {flops.total / 1e12:.2f} T"
    )
    print(f"answers: {len(answers)}, empty: {sum(1 for a in answers if not a)}")
    busy_text = ""
    if args.profile:
        busy = profile(model, processor, images, warm, batch_size, args.new_tokens, flops, ours_s)
        busy_text = f", device busy {busy:.0%} (profile, harness estimate)"
    if "vllm" in args.engines:
        side_by_side(args, model, processor, images, warm, harness, rows[0][1], gpu)
    speedup = rows[0][1] / rows[1][1]
    print(
        f"SUMMARY throughput [{'GPU' if gpu else 'CPU scaled-down'}]: harness {rows[0][1]:.3f} "
        f"samples/s ({rows[0][1] * flops.total / 1e12:.4g} TFLOP/s, peak {peak_ours:.1f} GiB), "
        f"reference loop {rows[1][1]:.3f} samples/s, {speedup:.2f}x; batch {batch_size}, "
        f"{n_images} images, {args.new_tokens} new tokens, build {build_s:.1f} s{busy_text}"
    )
    return 0


def parse_engines(raw: str) -> tuple[str, ...]:
    """--engines: hf, or hf,vllm (the HF engine always runs: it is the baseline)."""
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if not names or set(names) - {"hf", "vllm"} or "hf" not in names:
        raise argparse.ArgumentTypeError(f"give hf or hf,vllm, not {raw!r}")
    return names


def gen_requests(images: list, questions: list[str], new_tokens: int) -> list[GenRequest]:
    """One request per (question, image), images interleaved, exactly `new_tokens` each."""
    settings = GenSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    return [
        GenRequest(q, [image], settings, "bench", k * len(images) + i)
        for k, q in enumerate(questions)
        for i, image in enumerate(images)
    ]


def timed(engine, requests: list[GenRequest], device: torch.device) -> float:
    """Seconds of one `generate` call over all requests."""
    sync(device)
    start = time.perf_counter()
    engine.generate(requests)
    sync(device)
    return time.perf_counter() - start


def vllm_engine(folder: Path, gpu: bool, prefix_caching: bool):
    """The vLLM engine of `--model dragonfly_vllm` on the saved bench config with vLLM's random
    weights, and vLLM's statistics on (for the prefix cache's hit count)."""
    from dragonfly_eval.vllm.engine import VllmEngine, VllmSettings

    @dataclass(frozen=True)
    class WithStats(VllmSettings):
        def llm_kwargs(self) -> dict:
            return {**super().llm_kwargs(), "disable_log_stats": False, "load_format": "dummy"}

    settings = WithStats(
        dtype="bfloat16" if gpu else "float32",
        # eager: no compilation or CUDA graph capture at start-up (on a GPU they take a minute
        # or two per engine, and gpu_check.sh has 8 minutes), so vLLM's figures are a floor
        enforce_eager=True,
        enable_prefix_caching=prefix_caching,
        # the HF engine's model stays on the GPU beside it; one sample is ~2,150 positions
        gpu_memory_utilization=0.5 if gpu else 0.9,
        max_model_len=8192,
        progress=False,
    )
    return VllmEngine(str(folder), settings)


def prefix_cache_counts(engine) -> tuple[int, int]:
    """(hits, queries) of vLLM's prefix cache so far, in tokens."""
    counts = {m.name: getattr(m, "value", 0) for m in engine.llm.get_metrics()}
    return counts.get("vllm:prefix_cache_hits", 0), counts.get("vllm:prefix_cache_queries", 0)


def processor_ms_per_image(engine, images: list) -> tuple[float, float]:
    """(wall, CPU) milliseconds per image of vLLM's multimodal processor cutting the crops (the
    plugin's `_call_hf_processor`, one image per call, distinct images: no cache involved)."""
    from vllm.multimodal import MULTIMODAL_REGISTRY

    mm = MULTIMODAL_REGISTRY.create_processor(engine.llm.llm_engine.model_config)
    mm._call_hf_processor({"images": [images[0]]}, {})  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for image in images:
        mm._call_hf_processor({"images": [image]}, {})
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall / len(images) * 1e3, cpu / len(images) * 1e3


def side_by_side(
    args: argparse.Namespace,
    model: DragonflyForCausalLM,
    processor: DragonflyProcessor,
    images: list,
    warm: list,
    harness: Engine,
    hf_sps: float,
    gpu: bool,
) -> None:
    """vLLM on the harness's workload, the reuse case on both engines, the processor's cost."""
    if not gpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    device = model.device
    with tempfile.TemporaryDirectory(prefix="dragonfly-bench-") as tmp:
        folder = Path(tmp)
        config = copy.deepcopy(model.config)
        config.architectures = [type(model).__name__]  # what save_pretrained would write
        config.save_pretrained(folder)
        processor.tokenizer.save_pretrained(folder)
        plain = gen_requests(images, [QUESTION], args.new_tokens)
        questions = [
            REUSE_QUESTIONS[k % len(REUSE_QUESTIONS)] for k in range(args.questions_per_image)
        ]
        reuse_images = [
            synthetic_image(*SIZES[i % len(SIZES)], seed=2000 + i) for i in range(args.reuse_images)
        ]
        reuse = gen_requests(reuse_images, questions, args.new_tokens)
        warm_requests = gen_requests(warm, [QUESTION], args.new_tokens)

        if gpu:
            torch.cuda.empty_cache()  # what the HF engine's runs left reserved
        engine = vllm_engine(folder, gpu, prefix_caching=True)
        engine.generate(warm_requests)
        engine.generated_tokens = 0
        plain_s = timed(engine, plain, device)
        plain_tokens = engine.generated_tokens
        hits, queries = prefix_cache_counts(engine)
        cached_s = timed(engine, reuse, device)
        after = prefix_cache_counts(engine)
        hits, queries = after[0] - hits, after[1] - queries
        crop_ms, crop_cpu_ms = processor_ms_per_image(engine, images)
        engine.close()
        del engine
        engine = vllm_engine(folder, gpu, prefix_caching=False)
        engine.generate(warm_requests)
        uncached_s = timed(engine, reuse, device)
        engine.close()
        del engine

    for store in (harness.caches.embeddings, harness.caches.prefixes):
        if store is not None:
            store.clear()
    hf_reuse_s = timed(harness, reuse, device)
    vllm_sps = len(plain) / plain_s
    where = (
        "GPU, vLLM eager"
        if gpu
        else "CPU scaled-down config (head_dim 32: vLLM's CPU attention needs >= 32)"
    )
    print(
        f"engines side by side [{where}], {len(plain)} images x 1 question, {args.new_tokens} new tokens:"
    )
    print(
        f"  hf   {hf_sps:7.3f} samples/s | vllm {vllm_sps:7.3f} samples/s "
        f"({plain_tokens} tokens generated) | vllm / hf {vllm_sps / hf_sps:.2f}x"
    )
    n = len(reuse)
    block = len(
        image_block(processor.crop_token_counts(), processor.placeholder_id, processor.separator_id)
    )
    print(
        f"image reuse [{where}], {args.reuse_images} images x {args.questions_per_image} "
        f"questions = {n} requests:"
    )
    print(
        f"  vllm enable_prefix_caching=true {n / cached_s:7.3f} samples/s | false "
        f"{n / uncached_s:7.3f} samples/s | {uncached_s / cached_s:.2f}x; hf (image and prefix "
        f"caches) {n / hf_reuse_s:7.3f} samples/s"
    )
    print(
        f"  vllm prefix cache, reuse run: {hits:,} of {queries:,} prompt positions were hits, "
        f"{hits / n:,.0f} per request (an image block is {block} positions)"
    )
    print(
        f"vLLM multimodal processor, cutting crops: {crop_ms:.1f} ms wall, {crop_cpu_ms:.1f} ms "
        f"CPU (all threads of the process) per image ({len(images)} images, one per call)"
    )
    print(
        f"SUMMARY engines [{'GPU' if gpu else 'CPU scaled-down, head_dim 32'}]: hf {hf_sps:.3f} "
        f"samples/s, vllm {vllm_sps:.3f} samples/s, vllm/hf {vllm_sps / hf_sps:.2f}x; reuse "
        f"({args.reuse_images}x{args.questions_per_image}): vllm prefix caching on "
        f"{n / cached_s:.3f} / off {n / uncached_s:.3f} samples/s ({uncached_s / cached_s:.2f}x), "
        f"hf {n / hf_reuse_s:.3f}; processor {crop_ms:.1f} ms/image wall, {crop_cpu_ms:.1f} ms CPU"
    )
    print(gpu_targets(hf_sps, vllm_sps) if gpu else "GPU targets: not judged on the CPU")


def gpu_targets(hf_sps: float, vllm_sps: float) -> str:
    """Issue 22's GPU targets, met or not (printed, never asserted: a figure, not a test)."""
    ratio = vllm_sps / hf_sps

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return (
        f"GPU targets (one H100/H200): vllm/hf {ratio:.2f}x >= 2x {verdict(ratio >= 2)}; "
        f"vllm {vllm_sps:.2f} samples/s >= 12 {verdict(vllm_sps >= 12)}"
    )


def suite_cost_inputs(
    processor: DragonflyProcessor,
    prompt: str,
    batches: list[dict[str, float]],
    samples_per_s: float,
    new_tokens: int,
) -> str:
    """The per-request figures bench/suite_cost.py takes, from the profile: the share of the
    device time spent on the image (preprocessing, tower, projector, the image block's part of
    the prefill) and the decode time per token per sample."""
    with_image = processor.layout([prompt], [1])["input_ids"].shape[1]
    image_positions = with_image - processor.layout([prompt], [0])["input_ids"].shape[1]

    def total(stage: str) -> float:
        return sum(b.get(stage, 0.0) for b in batches)

    image_stages = ("host-to-device copy", "device preprocessing", "vision tower")
    image_s = sum(total(s) for s in (*image_stages, "projector/pooling"))
    image_s += total("prefill") * image_positions / with_image
    device_s = sum(total(s) for s in (*DEVICE_STAGES, "waiting"))
    requests = sum(b["requests"] for b in batches)
    decode_ms = total("decode") / max(new_tokens - 1, 1) / requests * 1e3
    return (
        f"suite_cost inputs: --samples-per-s {samples_per_s:.3f} --image-share "
        f"{image_s / device_s:.3f} --decode-ms-per-token {decode_ms:.3f}"
    )


def profile(
    model: DragonflyForCausalLM,
    processor: DragonflyProcessor,
    images: list,
    warm: list,
    batch_size: int,
    new_tokens: int,
    flops: Flops,
    harness_s: float,
) -> float:
    """Profile the images batch by batch (after a warm-up batch), print the breakdown and return
    the harness run's estimated device busy fraction: the device time the work needs (from the
    profile) over the harness's wall time."""
    device = model.device
    dtype = model.vision_embed_tokens.weight.dtype
    prompt = chat_prompt(QUESTION)

    def batch(files: list[bytes]) -> dict[str, float]:
        return run_profile_batch(model, processor, prompt, files, new_tokens, device, dtype)

    batch(encoded_images(warm))
    files = encoded_images(images)
    batches = [batch(files[i : i + batch_size]) for i in range(0, len(files), batch_size)]
    print_profile(batches, batch_size, flops.per_stage(), device.type == "cuda")
    device_s = sum(b.get(stage, 0.0) for b in batches for stage in DEVICE_STAGES)
    harness_busy = min(device_s / harness_s, 1.0)
    print(
        f"harness run: {device_s:.2f} s of device work (profiled) in its {harness_s:.2f} s wall "
        f"time: device busy about {harness_busy:.0%}"
    )
    print(suite_cost_inputs(processor, prompt, batches, len(images) / harness_s, new_tokens))
    if device.type == "cuda":
        cost = gpu_path_cpu_cost(processor, files, device)
        print(
            f"CPU cost per image of the GPU path (JPEG decode + upload + launches): "
            f"{cost * 1e3:.1f} ms (target <= 15 ms)"
        )
    else:
        print(
            "CPU cost per image of the GPU path: not measured (no CUDA device); on the CPU the "
            "host and the 'device' are the same cores, so the busy figures say little"
        )
    return harness_busy


if __name__ == "__main__":
    raise SystemExit(main())
