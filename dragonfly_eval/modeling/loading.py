"""Loading released checkpoints: validate first, build the tower from its config, safetensors only.

The reference downloaded CLIP again at construction although the checkpoint holds the tower's
weights. Here the tower is built from a config (a known hub id maps to a built-in one, a relative
path resolves against the checkpoint folder, a folder is read) and every weight comes from the
checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import CLIPVisionConfig, GenerationConfig

from dragonfly_eval.modeling.configuration import DragonflyConfig

# The CLIP towers of the released checkpoints (facts from the public CLIP configs).
KNOWN_TOWERS: dict[str, dict[str, Any]] = {
    "openai/clip-vit-large-patch14-336": dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    ),
    "openai/clip-vit-base-patch32": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
        projection_dim=512,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    ),
}

HUB_PATTERNS = ["*.json", "*.safetensors", "*/config.json", "*/preprocessor_config.json"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as Dragonfly; the message names the file and problem."""


def resolve_checkpoint(name_or_path: str, revision: str | None = None) -> Path:
    """A local folder for a checkpoint folder or a hub id (downloaded once into the HF cache)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path}: expected a checkpoint folder, found a file")
    looks_like_hub_id = name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/"))
    if not looks_like_hub_id:
        raise CheckpointError(f"{name_or_path}: no such checkpoint folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name_or_path, revision=revision, allow_patterns=HUB_PATTERNS))
    except Exception as err:  # network, auth, missing repo: all end the same way for a user
        raise CheckpointError(
            f"{name_or_path}: not a local folder and could not be fetched from the hub ({err})"
        ) from err


def read_config(folder: Path) -> DragonflyConfig:
    """The checkpoint's DragonflyConfig with its vision tower resolved."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{config_file}: missing (not a Dragonfly checkpoint folder)")
    try:
        data = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_file}: not valid JSON ({err})") from err
    if data.get("model_type") != "dragonfly":
        raise CheckpointError(
            f"{config_file}: model_type is {data.get('model_type')!r}, not 'dragonfly'"
        )
    if "text_config" not in data:
        raise CheckpointError(f"{config_file}: no text_config (the Llama settings)")
    config = DragonflyConfig.from_dict(data)
    if config.vision_config is None:
        config.vision_config = resolve_vision_config(config.image_encoder, folder, config_file)
    return config


def tower_folder(image_encoder: str | None, checkpoint: Path) -> Path | None:
    """The folder holding the tower's config files, if `image_encoder` names one."""
    if not image_encoder or image_encoder in KNOWN_TOWERS:
        return None
    for candidate in (checkpoint / image_encoder, Path(image_encoder).expanduser()):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def resolve_vision_config(
    image_encoder: str | None, checkpoint: Path, config_file: Path
) -> CLIPVisionConfig:
    """Build the tower's config without downloading it: known id, relative path, or folder."""
    if image_encoder in KNOWN_TOWERS:
        return CLIPVisionConfig(**KNOWN_TOWERS[image_encoder])
    folder = tower_folder(image_encoder, checkpoint)
    if folder is None:
        raise CheckpointError(
            f"{config_file}: unknown image_encoder {image_encoder!r}; expected one of "
            f"{sorted(KNOWN_TOWERS)}, a folder relative to the checkpoint, or a folder path "
            "holding the tower's config.json"
        )
    data = json.loads((folder / "config.json").read_text())
    if data.get("model_type") == "clip":  # a full CLIP config: take its vision half
        data = data.get("vision_config", {})
    data.pop("model_type", None)
    return CLIPVisionConfig(**data)


def weight_files(folder: Path, allow_pickle: bool = False) -> list[Path]:
    """The checkpoint's safetensors files; pickle weights only with an explicit override."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise CheckpointError(f"{index}: lists shards that are missing: {missing}")
        return [folder / s for s in shards]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    pickles = sorted(folder.glob("pytorch_model*.bin"))
    if pickles and allow_pickle:
        return pickles
    if pickles:
        raise CheckpointError(
            f"{folder}: has only pickle weights ({pickles[0].name}); loading pickle can run code. "
            "Convert the checkpoint to safetensors, or pass allow_pickle=True if you trust it."
        )
    raise CheckpointError(f"{folder}: no model.safetensors or model.safetensors.index.json")


def checkpoint_key(model_key: str) -> str:
    """The released name of a parameter: the tower's keys carry `vision_model.` there."""
    if model_key.startswith("image_encoder.") and not model_key.startswith(
        "image_encoder.vision_model."
    ):
        return "image_encoder.vision_model." + model_key[len("image_encoder.") :]
    return model_key


def _header_shapes(files: list[Path]) -> dict[str, tuple[tuple[int, ...], Path]]:
    shapes: dict[str, tuple[tuple[int, ...], Path]] = {}
    for file in files:
        if file.suffix != ".safetensors":
            continue
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                shapes[key] = (tuple(handle.get_slice(key).get_shape()), file)
    return shapes


def check_weights(expected: dict[str, tuple[int, ...]], files: list[Path]) -> None:
    """Compare the checkpoint's tensor names and shapes with the model's, before loading any."""
    found = _header_shapes(files)
    if not found:  # pickle files carry no header; load_state_dict(strict) checks them instead
        return
    where = ", ".join(f.name for f in files)
    missing = sorted(k for k in expected if k not in found)
    mismatched = [
        f"{k} (checkpoint {found[k][0]} in {found[k][1].name}, model {shape})"
        for k, shape in expected.items()
        if k in found and found[k][0] != shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors, e.g. {missing[:5]}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches, e.g. {mismatched[:3]}")
    if problems:
        raise CheckpointError(f"{where}: " + "; ".join(problems))


def read_tensors(files: list[Path]):
    """Yield (name, tensor) from the weight files, one tensor at a time."""
    for file in files:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    yield key, handle.get_tensor(key)
        else:
            yield from torch.load(file, map_location="cpu", weights_only=True).items()


def load_dragonfly(
    pretrained: str,
    *,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    device_map: str | dict[str, Any] | None = None,
    attn_implementation: str = "sdpa",
    zoom: str | None = None,
    allow_pickle: bool = False,
    revision: str | None = None,
    config: DragonflyConfig | None = None,
    **unused: Any,
):
    """Build a DragonflyForCausalLM from a checkpoint: validated, then loaded tensor by tensor.

    `device_map` ("auto" or a module->device dict) shards the model over several GPUs with
    accelerate; otherwise the whole model goes to `device` (default CPU).
    """
    from accelerate import dispatch_model, infer_auto_device_map, init_empty_weights
    from accelerate.utils import set_module_tensor_to_device

    from dragonfly_eval.modeling.modeling import DragonflyForCausalLM

    if pretrained == "dragonfly-tiny":
        from dragonfly_eval.modeling.tiny import build_tiny_model

        return build_tiny_model(dtype=dtype, device=device, zoom=zoom)
    folder = resolve_checkpoint(pretrained, revision=revision)
    if config is None or getattr(config, "vision_config", None) is None:
        config = read_config(folder)
    files = weight_files(folder, allow_pickle=allow_pickle)
    dtype = _as_dtype(dtype) or torch.float32
    config.zoom = zoom
    for sub in (config.text_config, config.vision_config):
        sub._attn_implementation = attn_implementation
    with init_empty_weights():
        model = DragonflyForCausalLM(config)
    expected = {checkpoint_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    check_weights(expected, files)
    by_checkpoint_name = {checkpoint_key(k): k for k in model.state_dict()}
    target = torch.device(device) if device is not None and device_map is None else None
    loaded = set()
    for key, tensor in read_tensors(files):
        if key not in by_checkpoint_name:
            continue  # e.g. the tower's unused position_ids buffer of older exports
        set_module_tensor_to_device(
            model, by_checkpoint_name[key], target or "cpu", value=tensor, dtype=dtype
        )
        loaded.add(key)
    missing = sorted(set(expected) - loaded)
    if missing:
        raise CheckpointError(f"{folder}: weights missing after loading: {missing[:5]}")
    if device_map is not None:
        if device_map == "auto":
            device_map = infer_auto_device_map(
                model, no_split_module_classes=model._no_split_modules, dtype=dtype
            )
        model = dispatch_model(model, device_map=device_map)
    elif target is not None:
        model.to(target)
    generation_file = folder / "generation_config.json"
    if generation_file.is_file():
        model.language_model.generation_config = GenerationConfig.from_pretrained(str(folder))
    model.eval()
    return model


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return None
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(names)}")
    return names[dtype]
