"""`DragonflyConfig`: everything that defines a Dragonfly checkpoint, as plain data.

Like `LlavaNextConfig` for LLaVA-NeXT, the config is the single source of truth: the version, the
zoom setting, the tower layer and pooling, v1's patch selection, the candidate resolutions, the
placeholder tokens, the crop size and the pixel normalization are fields with the released values
as defaults (`released.py`), and `problems` / `invalid_sizes` say which do not fit. It reads no
file: a tower named by a folder is read into `vision_config` by `checkpoint_files.with_tower` as
transformers reads the config (`from_dict`), so `AutoConfig.from_pretrained(folder)` returns a
complete config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import CLIPVisionConfig, LlamaConfig, PretrainedConfig
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from dragonfly_eval.modeling import released
from dragonfly_eval.modeling.checkpoint_files import with_tower
from dragonfly_eval.modeling.geometry import (
    ZoomGeometry,
    crops_per_image,
    crops_per_level,
    make_geometry,
)

# The fields that size the network; each must be a positive integer (head_dim may be unset).
TEXT_SIZES = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
)

VISION_SIZES = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "image_size",
    "patch_size",
    "num_channels",
)


def tower_config(
    vision_config: dict[str, Any] | CLIPVisionConfig | None, image_encoder: str | None
) -> CLIPVisionConfig | None:
    """The tower's config: as given (a dict becomes a CLIPVisionConfig), else the built-in one of
    a known `image_encoder` id, else None (a tower folder is read by `from_dict`)."""
    if isinstance(vision_config, dict):
        return CLIPVisionConfig(**{k: v for k, v in vision_config.items() if k != "model_type"})
    if vision_config is None and image_encoder in released.KNOWN_TOWERS:
        return CLIPVisionConfig(**released.KNOWN_TOWERS[image_encoder])
    return vision_config


def infer_version(vision: CLIPVisionConfig) -> int:
    """The version of a released config that does not say it, from the tower's geometry:
    v1 towers (ViT-B/32 at 224 px) see 7x7 patches per crop, v2 towers (ViT-L/14-336) 24x24."""
    return 1 if vision.image_size // vision.patch_size < 12 else 2


def _grids(grids: Any) -> tuple[tuple[int, int], ...] | None:
    return None if grids is None else tuple(tuple(g) for g in grids)


class DragonflyConfig(PretrainedConfig):
    """Configuration of a Dragonfly checkpoint.

    `text_config` is the Llama language model. `image_encoder` is what the released config names
    (the CLIP hub id the tower was built from, or a path); `vision_config` is the tower's
    `CLIPVisionConfig`, resolved from `image_encoder` when the config is read (a path relative to
    the checkpoint folder `name_or_path`) and saved with the model, so a saved checkpoint is
    self-contained. Leftover fields of the released configs (`image_size: 300`, `patch_size: 30`,
    top-level Llama fields) are kept but unused.

    The model's settings, released values by default: `version` (1: ViT-B/32 224 px with patch
    selection, 2: ViT-L/14 336 px with pooling; inferred from the tower when absent), `zoom`
    (the version's default), `vision_feature_layer`, `pool_kernel` (v2), `v1_block` and
    `v1_top_k` (v1's selection), `medium_grids` and `high_grids` (candidate layouts in crops;
    `high_grids` None: `high_scale` times the medium), `image_token` and `separator_token`,
    `crop_size` (the tower's image size), `image_mean`, `image_std`, `rescale_factor` (the tower
    folder's preprocessor_config.json, else CLIP's) and `vision_chunk_size`. `validate` checks
    that they fit together.
    """

    model_type = "dragonfly"
    sub_configs = {"text_config": LlamaConfig, "vision_config": CLIPVisionConfig}

    def __init__(
        self,
        text_config: dict[str, Any] | LlamaConfig | None = None,
        image_encoder: str | None = None,
        vision_config: dict[str, Any] | CLIPVisionConfig | None = None,
        version: int | None = None,
        zoom: str | None = None,
        vision_feature_layer: int = released.VISION_FEATURE_LAYER,
        pool_kernel: int = released.POOL_KERNEL,
        v1_block: int = released.V1_BLOCK,
        v1_top_k: int = released.V1_TOP_K,
        medium_grids: Any = released.MEDIUM_GRIDS,
        high_grids: Any = None,
        high_scale: int = released.HIGH_SCALE,
        image_token: str = released.IMAGE_TOKEN,
        separator_token: str = released.SEPARATOR_TOKEN,
        crop_size: int | None = None,
        image_mean: Any = None,
        image_std: Any = None,
        rescale_factor: float | None = None,
        vision_chunk_size: int = released.VISION_CHUNK_SIZE,
        tie_word_embeddings: bool = False,
        **kwargs: Any,
    ) -> None:
        if isinstance(text_config, dict):
            text_config = LlamaConfig(**{k: v for k, v in text_config.items() if k != "model_type"})
        self.text_config = text_config if text_config is not None else LlamaConfig()
        if "rope_scaling" in kwargs and kwargs["rope_scaling"] is None:
            del kwargs["rope_scaling"]
            self._drop_rope_scaling()
        vision_config = tower_config(vision_config, image_encoder)
        self.vision_config = vision_config
        self.image_encoder = image_encoder
        if version is None and vision_config is not None:
            version = infer_version(vision_config)  # released configs do not say it
        self.version = version
        self.zoom = zoom or released.DEFAULT_ZOOM.get(version)
        self.vision_feature_layer = vision_feature_layer
        self.pool_kernel = pool_kernel
        self.v1_block = v1_block
        self.v1_top_k = v1_top_k
        self.medium_grids = _grids(medium_grids)
        self.high_grids = _grids(
            released.V1_HIGH_GRIDS if high_grids is None and version == 1 else high_grids
        )
        self.high_scale = high_scale
        self.image_token = image_token
        self.separator_token = separator_token
        self.crop_size = crop_size or (vision_config.image_size if vision_config else None)
        self.image_mean = tuple(image_mean or OPENAI_CLIP_MEAN)
        self.image_std = tuple(image_std or OPENAI_CLIP_STD)
        self.rescale_factor = float(rescale_factor or released.RESCALE_FACTOR)
        self.vision_chunk_size = vision_chunk_size
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """transformers' `from_dict`, with a tower named by a folder (relative to the checkpoint
        folder `name_or_path`) read into `vision_config` first (`checkpoint_files.with_tower`)."""
        folder = kwargs.get("name_or_path", config_dict.get("name_or_path"))
        return super().from_dict(with_tower(config_dict, folder), **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> Any:
        """transformers' `from_pretrained`, telling the config the folder it is read from (a
        tower folder named relative to the checkpoint resolves against it), as AutoConfig does."""
        kwargs.setdefault("name_or_path", str(pretrained_model_name_or_path))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def _drop_rope_scaling(self) -> None:
        # The released v2 config says `rope_scaling: null` at the top level: the model was
        # trained without Llama-3.1's rope scaling, whatever the text config inherited.
        params = getattr(self.text_config, "rope_parameters", None)
        if isinstance(params, dict):
            theta = params.get("rope_theta", 500000.0)
            self.text_config.rope_parameters = {"rope_type": "default", "rope_theta": theta}
        else:  # transformers versions before rope_parameters
            self.text_config.rope_scaling = None

    # --- derived settings ------------------------------------------------------------------
    @property
    def grid(self) -> int:
        """Patches per side of one crop in the tower (24 for ViT-L/14-336, 7 for ViT-B/32-224)."""
        return self.vision_config.image_size // self.vision_config.patch_size

    def geometry(self) -> ZoomGeometry:
        """The zoom-in layout: crop size and candidate resolutions."""
        return make_geometry(
            self.version, self.crop_size, self.medium_grids, self.high_grids, self.high_scale
        )

    def level_crops(self) -> dict[str, int]:
        """Crops of each zoom level (1 low, 4 medium, 36 high for v2; 24 high for v1)."""
        return crops_per_level(self.geometry())

    def crops_per_image(self) -> int:
        """Crops the processor cuts per image (before v1's selection)."""
        return crops_per_image(self.version, self.zoom, self.geometry())

    # --- checks ----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ValueError naming every setting that does not fit the others."""
        super().validate()
        problems = self.problems()
        if problems:
            raise ValueError("invalid Dragonfly config: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """What `validate` refuses, one line each (empty when the config is consistent)."""
        if self.vision_config is None:
            return [f"vision_config is not resolved (image_encoder={self.image_encoder!r})"]
        if self.version not in released.ZOOMS:
            return [f"version must be one of {sorted(released.ZOOMS)}, got {self.version!r}"]
        found = []
        if self.zoom not in released.ZOOMS[self.version]:
            found.append(
                f"zoom={self.zoom!r} is not valid for Dragonfly v{self.version}; "
                f"choose from {released.ZOOMS[self.version]}"
            )
        if self.crop_size != self.vision_config.image_size:
            found.append(
                f"crop_size {self.crop_size} differs from the tower's image_size "
                f"{self.vision_config.image_size}"
            )
        found += self._layout_problems() + self._setting_problems()
        return found

    def _layout_problems(self) -> list[str]:
        found = []
        for name in ("medium_grids", "high_grids"):
            grids = getattr(self, name)
            if grids is None and name == "high_grids":
                continue
            if not grids or any(len(g) != 2 or not _positive(*g) for g in grids):
                found.append(f"{name} must be (columns, rows) pairs of positive integers")
        if found:
            return found
        medium = {c * r for c, r in self.medium_grids}
        high = {c * r for c, r in self.high_grids or ()}
        if len(medium) != 1 or len(high) > 1:
            found.append("the candidate layouts of one level must all hold the same crop count")
        if self.version == 2 and (not _positive(self.pool_kernel) or self.grid % self.pool_kernel):
            found.append(
                f"pool_kernel {self.pool_kernel!r} must divide the tower's grid {self.grid}"
            )
        if self.version == 1 and self.high_grids is None:
            found.append("v1 needs high_grids")
        elif self.version == 1 and medium and high:
            if medium.pop() * self.v1_block != high.pop():
                found.append("v1_block times the medium crops must equal the high crops")
            if not (_positive(self.v1_top_k) and self.v1_top_k <= self.v1_block):
                found.append(
                    f"v1_top_k must be 1..v1_block ({self.v1_block}), got {self.v1_top_k!r}"
                )
        return found

    def _setting_problems(self) -> list[str]:
        found = []
        layers = self.vision_config.num_hidden_layers
        if not isinstance(self.vision_feature_layer, int) or not (
            -layers - 1 <= self.vision_feature_layer <= layers
        ):
            found.append(f"vision_feature_layer must be in -{layers + 1}..{layers}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            found.append("image_mean and image_std need 3 values each, std positive")
        if not _positive(self.vision_chunk_size):
            found.append(
                f"vision_chunk_size must be a positive integer, got {self.vision_chunk_size!r}"
            )
        if self.image_token == self.separator_token:
            found.append("image_token and separator_token must differ")
        return found

    def invalid_sizes(self) -> list[str]:
        """The size fields that are not positive integers, as `text_config.hidden_size=-4`."""
        found = []
        for prefix, sub, names in (
            ("text_config", self.text_config, TEXT_SIZES),
            ("vision_config", self.vision_config, VISION_SIZES),
        ):
            for name in names:
                value = getattr(sub, name, None)
                if name == "head_dim" and value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    found.append(f"{prefix}.{name}={value!r}")
        return found


def _positive(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)
