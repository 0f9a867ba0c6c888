"""A checkpoint's JSON files read safely, and its vision tower's config found on disk.

Released configs name their tower by `image_encoder`: a CLIP hub id (`released.KNOWN_TOWERS`,
built without I/O by the config itself), or a folder holding the tower's config.json, relative
to the checkpoint folder or a path of its own. `with_tower` reads such a folder into the config's
`vision_config` and normalization fields before the config is built, so `DragonflyConfig` (plain
data) never touches the disk. Every problem is a `CheckpointError` naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from transformers import CLIPVisionConfig

from dragonfly_eval.errors import DragonflyEvalError
from dragonfly_eval.modeling.released import KNOWN_TOWERS
from dragonfly_eval.safe_json import JsonProblem, parse, read_bytes

ConfigT = TypeVar("ConfigT")

# A checkpoint's JSON files (config, index, preprocessor config) are kilobytes; a large
# safetensors index is a few MB.
MAX_JSON_BYTES = 32 * 2**20


class CheckpointError(DragonflyEvalError, ValueError):
    """A checkpoint that cannot be loaded as Dragonfly; the message names the file and problem."""


def read_json(path: Path) -> Any:
    """The JSON content of a checkpoint file; CheckpointError naming it when it is not JSON
    this project can hold (malformed, nested too deep, an integer too large for a float), not
    a regular file, or over MAX_JSON_BYTES."""
    raw = read_bytes(path, MAX_JSON_BYTES, CheckpointError)
    try:
        return parse(raw.decode("utf-8"))
    except (JsonProblem, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err


def build_config(make: Callable[[], ConfigT], config_file: Path | str) -> ConfigT:
    """`make()`, with a config value transformers refuses reported as a CheckpointError."""
    try:
        return make()
    except CheckpointError:
        raise
    except Exception as err:  # transformers validates field types with its own error classes
        raise CheckpointError(f"{config_file}: {type(err).__name__}: {err}") from err


def tower_folder(image_encoder: str | None, checkpoint: Path | None) -> Path | None:
    """The folder holding the tower's config files, if `image_encoder` names one (relative to
    the checkpoint folder, or a path of its own)."""
    if not image_encoder or image_encoder in KNOWN_TOWERS:
        return None
    candidates = [Path(image_encoder).expanduser()]
    if checkpoint is not None:
        candidates.insert(0, checkpoint / image_encoder)
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def read_tower_config(folder: Path) -> CLIPVisionConfig:
    """The tower's CLIPVisionConfig from its folder's config.json (the vision half of a whole
    CLIP config)."""
    tower_file = folder / "config.json"
    data = read_json(tower_file)
    if isinstance(data, dict) and data.get("model_type") == "clip":  # take the vision half
        data = data.get("vision_config", {})
    if not isinstance(data, dict):
        raise CheckpointError(f"{tower_file}: not a JSON object")
    data.pop("model_type", None)
    return build_config(lambda: CLIPVisionConfig(**data), tower_file)


def tower_normalization(folder: Path) -> dict[str, Any]:
    """`image_mean`, `image_std`, `rescale_factor` of the tower folder's
    preprocessor_config.json, for those it sets (nothing without the file)."""
    config_file = folder / "preprocessor_config.json"
    if not config_file.is_file():
        return {}
    data = read_json(config_file)
    if not isinstance(data, dict):
        raise CheckpointError(f"{config_file}: not a JSON object")
    return {k: data[k] for k in ("image_mean", "image_std", "rescale_factor") if k in data}


def with_tower(data: dict[str, Any], name_or_path: Any) -> dict[str, Any]:
    """A config dict whose `image_encoder` names a tower folder (relative to the checkpoint
    folder `name_or_path`), with that folder's config as `vision_config` and its normalization
    where the dict sets none; the dict itself when the tower is given or built in."""
    image_encoder = data.get("image_encoder")
    if data.get("vision_config") is not None or not image_encoder or image_encoder in KNOWN_TOWERS:
        return data
    checkpoint = checkpoint_folder(name_or_path)
    folder = tower_folder(image_encoder, checkpoint)
    if folder is None:
        config_file = checkpoint / "config.json" if checkpoint else "the config"
        raise CheckpointError(
            f"{config_file}: unknown image_encoder {image_encoder!r}; expected one of "
            f"{sorted(KNOWN_TOWERS)}, a folder relative to the checkpoint, or a folder path "
            "holding the tower's config.json"
        )
    normalization = tower_normalization(folder)
    unset = {k: v for k, v in normalization.items() if not data.get(k)}
    return {**data, **unset, "vision_config": read_tower_config(folder)}


def checkpoint_folder(name_or_path: Any) -> Path | None:
    """The checkpoint folder a config is read from, when it is a local folder."""
    if not name_or_path:
        return None
    path = Path(str(name_or_path)).expanduser()
    return path if path.is_dir() else None
