"""Dragonfly as a vLLM model: vLLM's CLIP tower and Llama, this project's crops and visual tokens.

vLLM imports this module (registered by name in `plugin.register`); nothing else should. The
multimodal processor cuts each image into uint8 crops with `DragonflyImageProcessor` (the
crops the HF path makes) and expands each image placeholder token of the prompt into the image
block `sequence.image_block` lays out, marking only its placeholders for visual embeddings
(the separators keep their word embeddings). `embed_multimodal` normalizes the crops, runs the
tower and makes the visual tokens with `modeling.visual_embeddings` (v2 pooling, v1 selection).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from transformers import BatchFeature
from vllm.config import VllmConfig
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.model_executor.models.clip import CLIPVisionModel
from vllm.model_executor.models.interfaces import SupportsMultiModal
from vllm.model_executor.models.utils import (
    AutoWeightsLoader,
    WeightsMapper,
    init_vllm_registered_model,
    maybe_prefix,
)
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
    PromptUpdateDetails,
)

from dragonfly_eval.modeling import DragonflyConfig, DragonflyProcessor
from dragonfly_eval.modeling.image_processing import DragonflyImageProcessor
from dragonfly_eval.modeling.modeling import visual_embeddings
from dragonfly_eval.modeling.sequence import image_block
from dragonfly_eval.modeling.zoom import to_rgb


class DragonflyProcessingInfo(BaseProcessingInfo):
    """The checkpoint's config and this project's processor, for vLLM's multimodal pipeline."""

    def get_hf_config(self) -> DragonflyConfig:
        return self.ctx.get_hf_config(DragonflyConfig)

    def get_hf_processor(self, **kwargs: object) -> DragonflyProcessor:
        """The processor the config defines (zoom included: vLLM's `hf_overrides` set it),
        over vLLM's tokenizer; built once."""
        if getattr(self, "_processor", None) is None:
            self._processor = DragonflyProcessor.for_config(
                self.get_hf_config(), self.get_tokenizer()
            )
        return self._processor

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": None}

    def image_block(self) -> list[int]:
        """One image's positions: per kept crop its placeholders, then one separator."""
        processor = self.get_hf_processor()
        return image_block(
            processor.crop_token_counts(), processor.placeholder_id, processor.separator_id
        )

    def get_mm_max_tokens_per_item(
        self, seq_len: int, mm_counts: Mapping[str, int]
    ) -> Mapping[str, int]:
        """Every image takes the same positions, whatever its size (2,098 for v2 `full`)."""
        return {"image": len(self.image_block())}


class DragonflyDummyInputsBuilder(BaseDummyInputsBuilder[DragonflyProcessingInfo]):
    """Placeholder tokens and blank images for vLLM's start-up profiling."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return self.info.get_hf_config().image_token * mm_counts.get("image", 0)

    def get_dummy_mm_data(
        self,
        seq_len: int,
        mm_counts: Mapping[str, int],
        mm_options: Mapping[str, MultiModalDummyOptions] | None = None,
    ) -> dict[str, Any]:
        size = self.info.get_hf_config().crop_size
        images = self._get_dummy_images(
            width=size, height=size, num_images=mm_counts.get("image", 0)
        )
        return {"image": images}


class DragonflyMultiModalProcessor(BaseMultiModalProcessor[DragonflyProcessingInfo]):
    """Images -> uint8 crops (`pixel_values`, [n_images, n_crops, se, se, 3]); each image
    placeholder token of the prompt -> that image's block."""

    def _call_hf_processor(
        self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]
    ) -> BatchFeature:
        image_processor = self.info.get_hf_processor().image_processor
        images = hf_data.get("images") or []
        crops = [torch.from_numpy(image_processor.crops(to_rgb(image))) for image in images]
        return BatchFeature({"pixel_values": torch.stack(crops)}, tensor_type=None)

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        return {"pixel_values": MultiModalFieldConfig.batched("image")}

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        processor = self.info.get_hf_processor()
        block = self.info.image_block()
        return [
            PromptReplacement(
                modality="image",
                target=[processor.placeholder_id],
                replacement=PromptUpdateDetails.select_token_id(block, processor.placeholder_id),
            )
        ]


@MULTIMODAL_REGISTRY.register_processor(
    DragonflyMultiModalProcessor,
    info=DragonflyProcessingInfo,
    dummy_inputs=DragonflyDummyInputsBuilder,
)
class DragonflyVllmForCausalLM(nn.Module, SupportsMultiModal):
    """CLIP tower (up to the feature layer) + linear projector + Llama, on vLLM's layers.

    Loads the released tensor names (`image_encoder.vision_model.*`) and those this project's
    `save_pretrained` writes (`image_encoder.*`). The placeholder token is in the vocabulary, so
    the text embeddings need no masking before the visual ones are scattered over them.
    """

    hf_to_vllm_mapper = WeightsMapper(
        orig_to_new_regex={
            re.compile(r"^image_encoder\.(?!vision_model\.)"): "image_encoder.vision_model."
        }
    )

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return DragonflyConfig().image_token
        raise ValueError(f"Dragonfly takes images only, not {modality}")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config: DragonflyConfig = vllm_config.model_config.hf_config
        config.validate()
        self.config = config
        self.image_processor = DragonflyImageProcessor.from_config(config)
        vision = config.vision_config
        layer = config.vision_feature_layer
        kept = layer if layer >= 0 else vision.num_hidden_layers + 1 + layer
        with self._mark_tower_model(vllm_config, "image"):
            # `hidden_states[feature_layer]` with CLS: the tower's output after `kept` layers,
            # before post-layernorm (the same cut as `vision.tower_features`).
            self.image_encoder = CLIPVisionModel(
                vision,
                quant_config=vllm_config.quant_config,
                num_hidden_layers_override=kept,
                require_post_norm=False,
                prefix=maybe_prefix(prefix, "image_encoder"),
            )
            self.vision_embed_tokens = nn.Linear(vision.hidden_size, config.text_config.hidden_size)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config,
                hf_config=config.text_config,
                architectures=["LlamaForCausalLM"],
                prefix=maybe_prefix(prefix, "language_model"),
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def embed_multimodal(self, **kwargs: object) -> list[torch.Tensor]:
        """Visual embeddings of each image, in prompt order: one [T, D] tensor per image
        (T = 2,057 for v2 `full`)."""
        crops = kwargs.get("pixel_values")
        if crops is None:
            return []
        if not isinstance(crops, torch.Tensor):
            crops = torch.stack(list(crops))  # type: ignore[arg-type]
        n_images, n_crops = crops.shape[:2]  # [n, n_crops, se, se, 3] uint8
        dtype = self.vision_embed_tokens.weight.dtype
        pixels = self.image_processor.normalize(crops.flatten(0, 1), dtype)  # [n*c, 3, se, se]
        chunk = self.config.vision_chunk_size or pixels.shape[0]
        feats = torch.cat(
            [
                self.image_encoder(part, feature_select_strategy="full")
                for part in pixels.split(chunk)
            ]
        )  # [n*c, 1+P, C]
        feats = feats.view(n_images, n_crops, *feats.shape[1:])
        visual = visual_embeddings(self.config, feats, self.vision_embed_tokens)  # [n, T, D]
        return list(visual.unbind(0))

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor:
        return self.language_model.model(
            input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds
        )

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights, mapper=self.hf_to_vllm_mapper)
