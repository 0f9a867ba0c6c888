"""What the vLLM tests share: random tiny Dragonfly checkpoints that vLLM's CPU attention can
run (head_dim 32), written in the released naming, the environment of an engine on the CPU, and
the skip mark of a machine without vLLM.

The checkpoints have the real zoom geometry (v2: 41 crops of 336 px, 2,098 positions per image;
v1: 29 crops of 224 px with patch selection, 867 positions) and small widths; their weights are
transformers' initialisation from a fixed seed, so no test has seen them trained.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

VLLM_MISSING = find_spec("vllm") is None
NEEDS_VLLM = pytest.mark.skipif(
    VLLM_MISSING,
    reason="vLLM is not installed (VLLM=1 bash scripts/bootstrap.sh installs it; CI does)",
)
# A vLLM engine on the CPU: 1 GiB of KV cache, no thread pinning (the machine is shared), and
# the engine core in the calling process (starts in ~17 s instead of ~38 s).
ENGINE_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "OMP_NUM_THREADS": "2",
}
TEXT = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    rms_norm_eps=1e-6,
)
VISION = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=3,
    num_attention_heads=2,
    projection_dim=64,
    hidden_act="quick_gelu",
)


def write_released_checkpoint(folder: Path, version: int, seed: int) -> Path:
    """A random Dragonfly `version` checkpoint as the authors released theirs: config.json
    naming its tower by a relative folder (`clip/`, no vision_config), tensors named
    `image_encoder.vision_model.*`, the tiny model's tokenizer."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import CLIPVisionConfig, LlamaConfig

    from dragonfly_eval.modeling import DragonflyConfig, DragonflyForCausalLM
    from dragonfly_eval.tiny.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    crop, patch = (336, 14) if version == 2 else (224, 32)
    vision = CLIPVisionConfig(**VISION, image_size=crop, patch_size=patch)
    text = LlamaConfig(
        **TEXT,
        vocab_size=len(tokenizer),
        max_position_embeddings=8192,
        rope_theta=500000.0,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
    )
    config = DragonflyConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), image_encoder="clip"
    )
    torch.manual_seed(seed)
    model = DragonflyForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "clip").mkdir()
    (folder / "clip" / "config.json").write_text(
        json.dumps({**vision.to_dict(), "architectures": ["CLIPVisionModel"]}, indent=2)
    )
    data = json.loads((folder / "config.json").read_text())
    for key in ("vision_config", "version", "zoom"):  # the released configs do not say them
        data.pop(key, None)
    data["rope_scaling"] = None
    (folder / "config.json").write_text(json.dumps(data, indent=2))
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    renamed = {
        ("image_encoder.vision_model." + k[len("image_encoder.") :])
        if k.startswith("image_encoder.")
        else k: v
        for k, v in tensors.items()
    }
    save_file(renamed, str(weights), metadata={"format": "pt"})
    return folder


def noise(seed: int, size: tuple[int, int] = (200, 150)):
    """A random RGB image of `size` (width, height)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)
