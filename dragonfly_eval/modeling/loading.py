"""Loading released checkpoints: validate first, build the tower from its config, safetensors only.

The reference downloaded CLIP again at construction although the checkpoint holds the tower's
weights. Here the tower is built from a config (a known hub id maps to a built-in one, a relative
path resolves against the checkpoint folder, a folder is read) and every weight comes from the
checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import psutil
import torch
from safetensors import SafetensorError, safe_open
from transformers import CLIPVisionConfig, GenerationConfig, LlamaConfig

from dragonfly_eval.modeling.checkpoint_files import CheckpointError, build_config, read_json
from dragonfly_eval.modeling.configuration import DragonflyConfig

HUB_PATTERNS = ["*.json", "*.safetensors", "*/config.json", "*/preprocessor_config.json"]


# Checkpoints known by name (`dragonfly-tiny`): name -> a function returning their folder.
NAMED_CHECKPOINTS: dict[str, Callable[[], Path]] = {}


def register_checkpoint(name: str, folder: Callable[[], Path]) -> None:
    """Make `name` resolve to the folder `folder()` returns (written on first use)."""
    NAMED_CHECKPOINTS[name] = folder


def looks_like_hub_id(name_or_path: str) -> bool:
    """Whether a `pretrained=` value that is no local folder is read as a hub id (`org/name`)."""
    return name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/", "~"))


def resolve_checkpoint(name_or_path: str, revision: str | None = None) -> Path:
    """A local folder for a named checkpoint, a checkpoint folder or a hub id (downloaded once
    into the HF cache)."""
    if name_or_path in NAMED_CHECKPOINTS:
        return NAMED_CHECKPOINTS[name_or_path]()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path}: expected a checkpoint folder, found a file")
    if not looks_like_hub_id(name_or_path):
        raise CheckpointError(f"{name_or_path}: no such checkpoint folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name_or_path, revision=revision, allow_patterns=HUB_PATTERNS))
    except Exception as err:  # network, auth, missing repo: all end the same way for a user
        raise CheckpointError(
            f"{name_or_path}: not a local folder and could not be fetched from the hub ({err})"
        ) from err


def read_config(folder: Path) -> DragonflyConfig:
    """The checkpoint's DragonflyConfig with its vision tower resolved and its sizes checked."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{config_file}: missing (not a Dragonfly checkpoint folder)")
    data = read_json(config_file)
    if not isinstance(data, dict):
        raise CheckpointError(f"{config_file}: not a JSON object")
    if data.get("model_type") != "dragonfly":
        raise CheckpointError(
            f"{config_file}: model_type is {data.get('model_type')!r}, not 'dragonfly'"
        )
    if "text_config" not in data:
        raise CheckpointError(f"{config_file}: no text_config (the Llama settings)")
    config = build_config(
        lambda: DragonflyConfig.from_dict(data, name_or_path=str(folder)), config_file
    )
    check_sizes(config, config_file)
    check_settings(config, config_file)
    return config


def check_settings(config: DragonflyConfig, config_file: Path | str) -> None:
    """Refuse settings that do not fit together (`DragonflyConfig.validate`)."""
    problems = config.problems()
    if problems:
        raise CheckpointError(f"{config_file}: invalid Dragonfly config: " + "; ".join(problems))


def check_sizes(config: DragonflyConfig, config_file: Path | str) -> None:
    """Refuse size fields that are not positive integers, before anything is built."""
    invalid = config.invalid_sizes()
    if invalid:
        raise CheckpointError(
            f"{config_file}: sizes must be positive integers, found {', '.join(invalid)}"
        )


def weight_files(folder: Path, allow_pickle: bool = False) -> list[Path]:
    """The checkpoint's safetensors files, all inside `folder`; pickle weights only for a
    checkpoint that has no safetensors at all, and only with the explicit override."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return inside_checkpoint(folder, index_shards(folder, index), index)
    single = folder / "model.safetensors"
    if single.is_file():
        return inside_checkpoint(folder, [single], single)
    pickles = sorted(folder.glob("pytorch_model*.bin"))
    if pickles and allow_pickle:
        return inside_checkpoint(folder, pickles, folder)
    if pickles:
        raise CheckpointError(
            f"{folder}: has only pickle weights ({pickles[0].name}); loading pickle can run code. "
            "Convert the checkpoint to safetensors, or pass allow_pickle=True if you trust it."
        )
    raise CheckpointError(f"{folder}: no model.safetensors or model.safetensors.index.json")


def index_shards(folder: Path, index: Path) -> list[Path]:
    """The shard files a safetensors index names: safetensors files given by relative paths
    without `..` (whatever allow_pickle says), all present."""
    data = read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: no weight_map of tensor names to shard files")
    names = sorted({str(name) for name in weight_map.values()})
    not_safetensors = [n for n in names if not n.endswith(".safetensors")]
    if not_safetensors:
        raise CheckpointError(
            f"{index}: lists shards that are not safetensors files: {not_safetensors[:5]}; "
            "a safetensors index may name only .safetensors shards (allow_pickle does not apply)"
        )
    escaping = [n for n in names if _escapes(n)]
    if escaping:
        raise CheckpointError(
            f"{index}: shard names must be paths inside the checkpoint folder, found {escaping[:5]}"
        )
    missing = [n for n in names if not _is_shard_file(index, folder / n, n)]
    if missing:
        shown = ", ".join(repr(_cut(n)) for n in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckpointError(f"{index}: lists shards that are missing: {shown}{more}")
    return [folder / n for n in names]


def _is_shard_file(index: Path, path: Path, name: str) -> bool:
    """Whether a shard is a file; CheckpointError when its name cannot name one at all."""
    try:
        return path.is_file()
    except OSError as err:  # ENAMETOOLONG: longer than any file system allows
        raise CheckpointError(
            f"{index}: shard name {_cut(name)!r} ({len(name)} characters) is not a usable file "
            f"name ({err.strerror or err})"
        ) from err


def _cut(name: str, limit: int = 80) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _escapes(name: str) -> bool:
    """Whether a shard name is absolute or climbs out with `..` (POSIX or Windows spelling)."""
    return any(
        path.is_absolute() or path.anchor or ".." in path.parts
        for path in (PurePosixPath(name), PureWindowsPath(name))
    )


def inside_checkpoint(folder: Path, files: list[Path], named_by: Path) -> list[Path]:
    """`files`, once each resolves (symlinks followed) inside the checkpoint folder.

    A hub download is a snapshot folder of links into its repository's `blobs` folder
    (huggingface_hub's cache layout), so for a `snapshots/<revision>` folder that is inside too.
    """
    root = folder.resolve()
    roots = [root]
    if root.parent.name == "snapshots":
        roots.append(root.parent.parent / "blobs")
    outside = [f.name for f in files if not any(f.resolve().is_relative_to(r) for r in roots)]
    if outside:
        raise CheckpointError(
            f"{named_by}: weight files resolve outside the checkpoint folder {root}: {outside[:5]}"
        )
    return files


# Released checkpoints name the tower's tensors `image_encoder.vision_model.*`; transformers 5's
# CLIPVisionModel holds them without the `vision_model.` level (what save_pretrained writes).
KEY_MAPPING = {r"^image_encoder\.vision_model\.": "image_encoder."}
RELEASED_TOWER_PREFIX = "image_encoder.vision_model."


def model_key(name: str) -> str:
    """The model's name for a checkpoint tensor, in either naming."""
    if name.startswith(RELEASED_TOWER_PREFIX):
        return "image_encoder." + name[len(RELEASED_TOWER_PREFIX) :]
    return name


@contextmanager
def open_safetensors(file: Path) -> Iterator[Any]:
    """safetensors' `safe_open`, with a truncated or inconsistent file reported as a
    CheckpointError naming it."""
    try:
        with safe_open(str(file), framework="pt") as handle:
            yield handle
    except SafetensorError as err:
        raise CheckpointError(f"{file}: not a readable safetensors file ({err})") from err


def header_shapes(files: list[Path]) -> dict[str, tuple[tuple[int, ...], Path]]:
    """Every tensor's shape and file by its model name (`model_key`), read from the
    safetensors headers (no tensor data)."""
    shapes: dict[str, tuple[tuple[int, ...], Path]] = {}
    for file in files:
        if file.suffix != ".safetensors":
            continue
        with open_safetensors(file) as handle:
            for key in handle.keys():
                shapes[model_key(key)] = (tuple(handle.get_slice(key).get_shape()), file)
    return shapes


# Where the decoder layers of each stack sit in the released tensor names.
LAYER_PREFIXES = {
    "text_config": "language_model.model.layers.",
    "vision_config": "image_encoder.encoder.layers.",
}


def parameter_counts(config: DragonflyConfig) -> dict[str, int]:
    """Parameters of the network `config` builds, by part, computed from the sizes alone
    (nothing is allocated): the CLIP tower, the projector and the Llama language model.
    Check `config.invalid_sizes()` first."""
    vision, text = config.vision_config, config.text_config
    return {
        "vision tower": _clip_vision_parameters(vision),
        "projector": (vision.hidden_size + 1) * text.hidden_size,
        "language model": _llama_parameters(text),
    }


def _clip_vision_parameters(v: CLIPVisionConfig) -> int:
    """transformers' CLIPVisionModel: embeddings, pre/post layer norms, encoder layers."""
    h, i = v.hidden_size, v.intermediate_size
    positions = (v.image_size // v.patch_size) ** 2 + 1
    embeddings = h + v.num_channels * h * v.patch_size**2 + positions * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * (2 * h)
    return embeddings + 2 * (2 * h) + v.num_hidden_layers * layer


def _llama_parameters(t: LlamaConfig) -> int:
    """transformers' LlamaForCausalLM: embeddings, decoder layers, final norm, lm_head."""
    h, i = t.hidden_size, t.intermediate_size
    head_dim = getattr(t, "head_dim", None) or h // t.num_attention_heads
    q, kv = t.num_attention_heads * head_dim, t.num_key_value_heads * head_dim
    attention = h * q + 2 * h * kv + q * h
    if getattr(t, "attention_bias", False):
        attention += q + 2 * kv + h
    mlp = 3 * h * i + ((2 * i + h) if getattr(t, "mlp_bias", False) else 0)
    layer = attention + mlp + 2 * h
    embeddings = t.vocab_size * h * (1 if t.tie_word_embeddings else 2)  # lm_head shares it
    return embeddings + t.num_hidden_layers * layer + h


def check_footprint(
    config: DragonflyConfig,
    dtype: torch.dtype,
    found: dict[str, tuple[tuple[int, ...], Path]],
    where: str,
    free: tuple[int, str] | None,
) -> None:
    """Before anything is allocated: refuse a config whose parameters at `dtype` exceed the free
    memory `free` ((bytes, where), when known), or that has more layers than the weight files
    (`found`, their headers) hold; building ten million empty layers alone would take hours."""
    counts = parameter_counts(config)
    total = sum(counts.values())
    needed = total * dtype.itemsize
    if free is not None and needed > free[0]:
        parts = ", ".join(f"{name} {n:,}" for name, n in counts.items())
        raise CheckpointError(
            f"{where}: the config implies {total:,} parameters ({parts}), "
            f"{_gib(needed)} in {dtype}, but only {_gib(free[0])} is free on {free[1]}; "
            "check the config's sizes, or load in a smaller dtype or on a larger device"
        )
    for sub, prefix in LAYER_PREFIXES.items():
        layers = getattr(config, sub).num_hidden_layers
        held = {key[len(prefix) :].split(".")[0] for key in found if key.startswith(prefix)}
        if found and layers > len(held):
            raise CheckpointError(
                f"{where}: {sub}.num_hidden_layers is {layers:,} but the weight files hold "
                f"{len(held)} such layers ({prefix}N.*)"
            )


def free_memory(device: torch.device | None, device_map: Any) -> tuple[int, str] | None:
    """(bytes free, name) where the weights will be placed: one GPU, all GPUs plus host memory
    for a device_map (accelerate offloads what does not fit), else host memory."""
    host = (psutil.virtual_memory().available, "the host (available RAM)")
    if device_map is not None:
        if not torch.cuda.is_available():
            return host
        gpus = sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
        return gpus + host[0], "the GPUs and the host together"
    if device is not None and device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0], str(device)
    if device is None or device.type == "cpu":
        return host
    return None  # another accelerator: no portable free-memory query


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"


def check_weights(
    expected: dict[str, tuple[int, ...]],
    files: list[Path],
    found: dict[str, tuple[tuple[int, ...], Path]],
) -> None:
    """Compare the checkpoint's tensor names and shapes (`found`, their `header_shapes`) with the
    model's, before loading any."""
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


def preflight(
    folder: Path,
    config: DragonflyConfig,
    dtype: torch.dtype,
    device: str | torch.device | None,
    device_map: Any,
    allow_pickle: bool,
    model_class: type,
) -> list[Path]:
    """The checkpoint's weight files, once everything that can be checked before loading holds:
    sizes, memory, layer counts (from the config and the safetensors headers, nothing built),
    then every tensor's name and shape against `model_class(config)` built on the meta device."""
    check_sizes(config, folder / "config.json")
    files = weight_files(folder, allow_pickle=allow_pickle)
    found = header_shapes(files)
    target = torch.device(device) if device is not None and device_map is None else None
    check_footprint(config, dtype, found, str(folder), free_memory(target, device_map))
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in model_class(config).state_dict().items()}
    check_weights(expected, files, found)
    return files


def check_files(folder: Path, allow_pickle: bool = False) -> None:
    """Every check of a checkpoint folder that reads no tensor data: its config (sizes, settings,
    tower) and its weight files (names, places, safetensors headers); CheckpointError if one
    fails."""
    read_config(folder)
    header_shapes(weight_files(folder, allow_pickle=allow_pickle))


def generation_config(folder: Path) -> GenerationConfig:
    """The checkpoint's generation_config.json, or transformers' defaults without one."""
    if (folder / "generation_config.json").is_file():
        return GenerationConfig.from_pretrained(str(folder))
    return GenerationConfig()


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype from a dtype, its name ("bfloat16", "bf16", ...), or None / "auto"."""
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


def load_dragonfly(pretrained: str | Path, **kwargs: Any) -> Any:
    """`DragonflyForCausalLM.from_pretrained`, under the name the harness has always imported.

    The class is looked up in transformers' causal-LM registry (`dragonfly_eval.modeling`
    registers it), not imported: the model sits above this module.
    """
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING

    return MODEL_FOR_CAUSAL_LM_MAPPING[DragonflyConfig].from_pretrained(pretrained, **kwargs)
