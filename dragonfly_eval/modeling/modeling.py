"""`DragonflyForCausalLM`: CLIP tower + linear projector + Llama, with zoom-in visual tokens."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import CLIPVisionModel, DynamicCache, LlamaForCausalLM, PreTrainedModel

from dragonfly_eval.modeling.configuration import DragonflyConfig
from dragonfly_eval.modeling.loading import (
    KEY_MAPPING,
    as_dtype,
    check_settings,
    generation_config,
    preflight,
    read_config,
    resolve_checkpoint,
)
from dragonfly_eval.modeling.sequence import position_ids_from_mask
from dragonfly_eval.modeling.vision import tower_features, v1_visual_tokens, v2_visual_tokens

ImagePatches = torch.Tensor | Sequence[torch.Tensor]

# transformers renamed the KV-cache argument from `past_key_values` to `cache` (5.2x); use the
# name the installed version takes, so older 5.x releases keep working.
CACHE_ARG = (
    "cache"
    if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters
    else "past_key_values"
)


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """`{name: cache}` under the installed transformers' argument name (empty for None)."""
    return {CACHE_ARG: cache} if cache is not None else {}


def output_cache(output: Any) -> Any:
    """The KV cache of a model output, whatever the installed transformers calls it."""
    return getattr(output, "cache", None) or getattr(output, "past_key_values", None)


def visual_embeddings(
    config: DragonflyConfig, feats: torch.Tensor, project: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Visual embeddings of whole images from their crops' tower features and the projector:
    [n_images, n_crops, 1+P, C] -> [n_images, T, D] (v2 pooling, v1 selection). Shared by this
    model and the vLLM model, whose towers differ but whose tokens must not."""
    if config.version == 2:
        # Pooling commutes with the affine projector; pooling first projects 11x fewer tokens.
        return project(v2_visual_tokens(feats, kernel=config.pool_kernel))
    projected = project(feats)  # [B, n_crops, 1+P, D]
    return v1_visual_tokens(
        projected,
        select=config.zoom == "select",
        n_medium=config.level_crops()["medium"],
        block=config.v1_block,
        top_k=config.v1_top_k,
    )


class DragonflyForCausalLM(PreTrainedModel):
    """Dragonfly: every image becomes zoom-in crops whose CLIP tokens precede the text in Llama.

    Load released checkpoints with `from_pretrained` (see `loading.load_dragonfly`); the call
    shape of the released README keeps working: `model(**processor(...))` and
    `model.generate(**processor(...), max_new_tokens=..., eos_token_id=...)`, which returns the
    input ids followed by the generated ids.
    """

    config_class = DragonflyConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    _no_split_modules = ["LlamaDecoderLayer", "CLIPEncoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flash_attn_2 = True

    def __init__(self, config: DragonflyConfig) -> None:
        super().__init__(config)
        config.validate()
        self.image_encoder = CLIPVisionModel(config.vision_config)
        self.vision_embed_tokens = nn.Linear(
            config.vision_config.hidden_size, config.text_config.hidden_size
        )
        self.language_model = LlamaForCausalLM(config.text_config)
        self.post_init()

    # --- visual tokens -------------------------------------------------------------------
    @property
    def zoom(self) -> str:
        """The zoom setting (`config.zoom`)."""
        return self.config.zoom

    @property
    def grid(self) -> int:
        """Patches per side of one crop in the tower (24 for ViT-L/14-336, 7 for ViT-B/32-224)."""
        return self.config.grid

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Visual embeddings of whole images: [n_images, n_crops, 3, se, se] -> [n_images, T, D].

        All crops of all images go through the tower in one call (chunked to bound memory).
        """
        cfg = self.config
        n_images, n_crops = pixels.shape[:2]
        tower_dtype = self.vision_embed_tokens.weight.dtype
        feats = tower_features(
            self.image_encoder,
            pixels.flatten(0, 1).to(tower_dtype),
            chunk_size=cfg.vision_chunk_size,
            feature_layer=cfg.vision_feature_layer,
        )  # [n_images * n_crops, 1+P, C]
        feats = feats.view(n_images, n_crops, *feats.shape[1:])  # [B, n_crops, 1+P, C]
        return visual_embeddings(cfg, feats, self.vision_embed_tokens)

    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        image_patches: ImagePatches | None = None,
        image_patches_indices: torch.Tensor | None = None,
        images_per_sample: Sequence[int] | None = None,
        visual_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Word embeddings with every placeholder replaced by its visual embedding: [B, L, D].

        `image_patches` is either the reference's list (one [k * n_crops, 3, se, se] tensor per
        sample, k images each) or one tensor [n_images, n_crops, 3, se, se] of all images in
        sample order with `images_per_sample` giving how many belong to each sample.
        `visual_embeds` ([n_images, T, D], from `encode_images`) replaces `image_patches` when
        the caller already encoded the images (e.g. an image asked about several times).
        """
        embeds = self.language_model.get_input_embeddings()(input_ids)  # [B, L, D]
        if image_patches_indices is None or (image_patches is None and visual_embeds is None):
            return embeds
        if visual_embeds is None:
            pixels, counts = self._stack_images(image_patches, images_per_sample)
            if pixels.shape[0] == 0:
                return embeds
            visual = self.encode_images(pixels.to(embeds.device))  # [n_images, T, D]
        else:
            visual = visual_embeds.to(embeds.device)
            counts = list(images_per_sample or [1] * input_ids.shape[0])
            if visual.shape[0] == 0:
                return embeds
        per_image = visual.shape[1]
        # Offset of each sample's first visual embedding in the flattened [n_images * T, D].
        starts = torch.tensor(counts, device=embeds.device).cumsum(0) - torch.tensor(
            counts, device=embeds.device
        )
        indices = image_patches_indices.to(embeds.device)
        if indices.shape[1] > input_ids.shape[1]:  # the reference's generation slack, all -1
            if bool((indices[:, input_ids.shape[1] :] >= 0).any()):
                raise ValueError("image_patches_indices points past the end of input_ids")
            indices = indices[:, : input_ids.shape[1]]
        placeholders = indices >= 0
        rows, cols = placeholders.nonzero(as_tuple=True)  # row-major, as masked_scatter fills
        flat_index = starts[rows] * per_image + indices[rows, cols]
        needed = torch.tensor(counts, device=embeds.device) * per_image
        if bool((indices.max(dim=1).values >= needed).any()) or rows.numel() != int(needed.sum()):
            raise ValueError(
                "image placeholders do not match the visual tokens: the processor and the model "
                f"must use the same zoom setting (model zoom={self.zoom!r}, {per_image} tokens "
                f"per image, {int(needed.sum())} expected, {rows.numel()} placeholders given)"
            )
        values = visual.reshape(-1, visual.shape[-1])[flat_index].to(embeds.dtype)
        return embeds.masked_scatter(placeholders[..., None].to(embeds.device), values)

    def _stack_images(
        self, image_patches: ImagePatches, images_per_sample: Sequence[int] | None
    ) -> tuple[torch.Tensor, list[int]]:
        n_crops = self.crops_per_image()
        if isinstance(image_patches, torch.Tensor) and image_patches.dim() == 5:
            if images_per_sample is None:
                images_per_sample = [1] * image_patches.shape[0]
            return image_patches, list(images_per_sample)
        counts = []
        for patches in image_patches:
            if patches.shape[0] % n_crops:
                raise ValueError(
                    f"a sample has {patches.shape[0]} crops, not a multiple of {n_crops} "
                    f"(zoom={self.zoom!r})"
                )
            counts.append(patches.shape[0] // n_crops)
        if images_per_sample is not None and list(images_per_sample) != counts:
            raise ValueError(
                f"image_patches hold {counts} images per sample at {n_crops} crops each, but "
                f"images_per_sample says {list(images_per_sample)}: the processor and the model "
                f"must use the same zoom setting (model zoom={self.zoom!r})"
            )
        stacked = torch.cat([p.reshape(-1, n_crops, *p.shape[1:]) for p in image_patches])
        return stacked, counts

    def crops_per_image(self) -> int:
        """Crops the processor cuts per image for this model's version and zoom."""
        return self.config.crops_per_image()

    # --- language model ------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        image_patches: ImagePatches | None = None,
        image_patches_indices: torch.Tensor | None = None,
        images_per_sample: Sequence[int] | None = None,
        visual_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ):
        """Causal LM forward pass; returns the language model's output (logits, cache, loss)."""
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(
                input_ids, image_patches, image_patches_indices, images_per_sample, visual_embeds
            )
        if position_ids is None and attention_mask is not None:
            position_ids = position_ids_from_mask(attention_mask)[:, -inputs_embeds.shape[1] :]
        cache = kwargs.pop("cache", None) if past_key_values is None else past_key_values
        kwargs.update(cache_kwargs(cache))
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            **kwargs,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        image_patches: ImagePatches | None = None,
        image_patches_indices: torch.Tensor | None = None,
        images_per_sample: Sequence[int] | None = None,
        visual_embeds: torch.Tensor | None = None,
        **generate_kwargs: Any,
    ) -> torch.Tensor:
        """Generate with transformers' generation utilities; returns prompt ids + new ids.

        `generate_kwargs` go to `generate` as they are: `stop_strings` (with `tokenizer`) end a
        row during generation; the language model's forward takes `logits_to_keep`, so
        transformers projects only the last position onto the vocabulary at each step.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds = self.embed_inputs(
            input_ids, image_patches, image_patches_indices, images_per_sample, visual_embeds
        )
        generate_kwargs.setdefault("pad_token_id", self._pad_token_id())
        cache = generate_kwargs.pop("cache", generate_kwargs.pop("past_key_values", None))
        generate_kwargs.update(cache_kwargs(cache))
        new_tokens = self.language_model.generate(
            inputs_embeds=embeds, attention_mask=attention_mask, **generate_kwargs
        )
        return torch.cat([input_ids, new_tokens.to(input_ids.device)], dim=1)

    @torch.no_grad()
    def score_continuations(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        continuation_mask: torch.Tensor,
        image_patches_indices: torch.Tensor | None = None,
        visual_embeds: torch.Tensor | None = None,
        images_per_sample: Sequence[int] | None = None,
        image_patches: ImagePatches | None = None,
        cache: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probability of the tokens marked by `continuation_mask` given everything before.

        Returns per sample the summed log-probability (float32), whether every marked token was
        the argmax (greedy), and the number of marked tokens. With `cache` (the KV cache of a
        prefix), `input_ids` are the tokens after it and `attention_mask` covers both. Logits
        are computed only at the positions that predict a marked token: the language model's
        last hidden states there go through the LM head (which every transformers 5.x allows;
        a boolean `logits_to_keep` needs 5.21).
        """
        marked = continuation_mask.to(input_ids.device).bool()
        predicting = torch.zeros_like(marked)
        predicting[:, :-1] = marked[:, 1:]  # position t predicts token t+1
        embeds = self.embed_inputs(
            input_ids, image_patches, image_patches_indices, images_per_sample, visual_embeds
        )
        positions = position_ids_from_mask(attention_mask)[:, -embeds.shape[1] :]
        hidden = self.language_model.model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=False,
            **cache_kwargs(cache),
        ).last_hidden_state  # [B, L, D]
        logits = self.language_model.lm_head(hidden[predicting]).float()  # [N marked, V]
        targets = input_ids[:, 1:][marked[:, 1:]].to(logits.device)  # [N], row-major as logits
        rows = predicting.nonzero(as_tuple=True)[0].to(logits.device)  # sample of each
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None])[:, 0]
        batch = input_ids.shape[0]
        total = torch.zeros(batch, device=logits.device).index_add_(0, rows, logprobs)
        misses = torch.zeros(batch, device=logits.device).index_add_(
            0, rows, (logits.argmax(dim=-1) != targets).float()
        )
        return total, misses == 0, marked[:, 1:].sum(dim=1).to(logits.device)

    # --- image-prefix KV caches (layout private to the model) ----------------------------
    def prefill_image_prefixes(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_patches_indices: torch.Tensor,
        visual_embeds: torch.Tensor,
    ) -> list[torch.Tensor]:
        """Keys and values of image-only samples (one image each, no text, no padding), one
        self-contained tensor per sample, to store and later pass to `image_prefix_cache`.
        Under `torch.no_grad()` for inference; with gradients, training backpropagates
        through them (one image block serving several questions)."""
        n = input_ids.shape[0]
        out = self(
            input_ids=input_ids,
            attention_mask=attention_mask,
            image_patches_indices=image_patches_indices,
            visual_embeds=visual_embeds,
            images_per_sample=[1] * n,
            use_cache=True,
            logits_to_keep=1,
        )
        layers = output_cache(out).layers
        keys = torch.stack([layer.keys for layer in layers], dim=1)  # [n, L, H, P, d]
        values = torch.stack([layer.values for layer in layers], dim=1)
        return list(torch.stack([keys, values], dim=2).unbind(0))  # n x [L, 2, H, P, d]

    @staticmethod
    def image_prefix_length(entry: torch.Tensor) -> int:
        """Positions covered by one `prefill_image_prefixes` entry."""
        return entry.shape[-2]

    def image_prefix_cache(self, entries: Sequence[torch.Tensor]) -> DynamicCache:
        """A fresh KV cache whose row i starts with the prefix `entries[i]` (the entries stay
        intact: the cache grows by concatenation into new tensors). Pass it as `cache`, with
        the ids after the prefix and an attention mask over prefix and text."""
        stacked = torch.stack(list(entries))  # [B, L, 2, H, P, d]
        layers = [(stacked[:, i, 0], stacked[:, i, 1]) for i in range(stacked.shape[1])]
        return DynamicCache(ddp_cache_data=layers, config=self.config.text_config)

    def _pad_token_id(self) -> int | None:
        gen = self.language_model.generation_config
        if gen.pad_token_id is not None:
            return gen.pad_token_id
        eos = gen.eos_token_id
        return eos[0] if isinstance(eos, list) else eos

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        device_map: str | dict[str, Any] | None = None,
        attn_implementation: str = "sdpa",
        zoom: str | None = None,
        allow_pickle: bool = False,
        revision: str | None = None,
        config: DragonflyConfig | None = None,
        **kwargs: Any,
    ) -> DragonflyForCausalLM:
        """Load a checkpoint folder, hub id or named checkpoint (`dragonfly-tiny`): validated
        before anything is built (`loading.preflight`), then loaded by transformers'
        `PreTrainedModel.from_pretrained` (safetensors only unless `allow_pickle`, released
        tensor names mapped by `loading.KEY_MAPPING`).

        `dtype` (default float32; `torch_dtype` is its deprecated name), `device` (the whole
        model on one device, default CPU) or `device_map` ("auto" or a module->device dict,
        sharded by accelerate), `zoom` (overrides `config.zoom`). Other keyword arguments go to
        transformers, which refuses those it does not know (TypeError from the model's
        constructor) rather than dropping them.
        """
        if "torch_dtype" in kwargs:
            warnings.warn("torch_dtype is deprecated, use dtype", FutureWarning, stacklevel=2)
            dtype = kwargs.pop("torch_dtype") if dtype is None else dtype
        target = as_dtype(dtype) or torch.float32
        folder = resolve_checkpoint(str(pretrained_model_name_or_path), revision=revision)
        config = read_config(folder) if config is None else config
        if zoom is not None:
            config.zoom = zoom
        check_settings(config, folder / "config.json")
        files = preflight(folder, config, target, device, device_map, allow_pickle, cls)
        config._attn_implementation = attn_implementation
        if device_map is None and device is not None and torch.device(device).type != "cpu":
            device_map = str(torch.device(device))
        model = super().from_pretrained(
            str(folder),
            config=config,
            dtype=target,
            device_map=device_map,
            use_safetensors=files[0].suffix == ".safetensors",
            key_mapping=KEY_MAPPING,
            attn_implementation=attn_implementation,
            **kwargs,
        )
        model.language_model.generation_config = generation_config(folder)
        return model.eval()
