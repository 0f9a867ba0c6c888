"""`DragonflyProcessor`: prompts and images to the model's inputs, in the released call shape."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoTokenizer, PreTrainedTokenizerBase, ProcessorMixin

from dragonfly_eval.modeling import released
from dragonfly_eval.modeling.configuration import DragonflyConfig
from dragonfly_eval.modeling.geometry import crop_token_counts
from dragonfly_eval.modeling.image_processing import DragonflyImageProcessor
from dragonfly_eval.modeling.loading import read_config, resolve_checkpoint
from dragonfly_eval.modeling.sequence import pad_batch, sample_layout

PROCESSOR_FILE = "processor_config.json"
EOT_TOKEN = "<|eot_id|>"
# Reference oddity: its processor (derived from Fuyu's) sizes `image_patches_indices` in generation
# mode for 10 tokens to generate beyond the prompt, so that row is 10 entries (-1) longer than
# `input_ids`. Reproduced in the drop-in output; the model ignores entries past the input length.
GENERATE_INDEX_SLACK = 10


def chat_prompt(question: str) -> str:
    """The Llama-3 chat wrapping Dragonfly was trained with: no system message, no image tag.

    Not the tokenizer's chat template: Llama-3.1's injects a system text the model never saw.
    The reference demo script omits the "\\n\\n" after the assistant header; its README and its
    training data include it, and so does this.
    """
    return (
        f"<|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


class DragonflyProcessor(ProcessorMixin):
    """Tokenizer + zoom-in image processor, laid out the way the released checkpoints expect.

    An HF processor: `save_pretrained` writes the tokenizer, preprocessor_config.json (the image
    processor) and processor_config.json (the token layout below), and `from_pretrained` /
    `AutoProcessor.from_pretrained` read them back. A released-format folder has none of these,
    so there the processor is built from the checkpoint's config (`for_config`).

    The token layout settings come from the DragonflyConfig: `image_token` and
    `separator_token`, `patch_grid` (tower patches per crop side), `pool_kernel` and
    `v1_top_k`.
    """

    def __init__(
        self,
        image_processor: DragonflyImageProcessor,
        tokenizer: PreTrainedTokenizerBase,
        image_token: str = released.IMAGE_TOKEN,
        separator_token: str = released.SEPARATOR_TOKEN,
        patch_grid: int = 24,
        pool_kernel: int = released.POOL_KERNEL,
        v1_top_k: int = released.V1_TOP_K,
        **kwargs: Any,
    ) -> None:
        self.image_token = image_token
        self.separator_token = separator_token
        self.patch_grid = patch_grid
        self.pool_kernel = pool_kernel
        self.v1_top_k = v1_top_k
        super().__init__(image_processor, tokenizer, **kwargs)
        self.placeholder_id = self._special_id(image_token)
        self.separator_id = self._special_id(separator_token)
        self.eot_id = self._special_id(EOT_TOKEN)
        self.pad_id = tokenizer.eos_token_id

    @classmethod
    def from_pretrained(
        cls,
        pretrained: str | Path,
        zoom: str | None = None,
        revision: str | None = None,
        config: DragonflyConfig | None = None,
        **kwargs: Any,
    ) -> DragonflyProcessor:
        """The processor of a checkpoint folder or hub id: built from `config` (e.g. the loaded
        model's, so config.json is not read again) and the folder's tokenizer when given, else
        from the folder's saved processor files, else from its config.json; `zoom` overrides
        the zoom."""
        folder = resolve_checkpoint(str(pretrained), revision=revision)
        if config is None and (folder / PROCESSOR_FILE).is_file():
            processor = super().from_pretrained(str(folder), **kwargs)
            if zoom:
                return processor.with_zoom(zoom)
            check_model_zoom(processor, folder)
            return processor
        config = read_config(folder) if config is None else config
        tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
        return cls.for_config(config, tokenizer, zoom)

    @classmethod
    def for_config(
        cls, config: DragonflyConfig, tokenizer: PreTrainedTokenizerBase, zoom: str | None = None
    ) -> DragonflyProcessor:
        """The processor a resolved DragonflyConfig defines (version, geometry, zoom, tokens)."""
        config.validate()
        return cls(
            DragonflyImageProcessor.from_config(config, zoom),
            tokenizer,
            image_token=config.image_token,
            separator_token=config.separator_token,
            patch_grid=config.grid,
            pool_kernel=config.pool_kernel,
            v1_top_k=config.v1_top_k,
        )

    def with_zoom(self, zoom: str) -> DragonflyProcessor:
        """This processor with another zoom setting (the tokenizer is shared)."""
        images = self.image_processor.to_dict()
        images.pop("image_processor_type")
        return type(self)(
            DragonflyImageProcessor(**{**images, "zoom": zoom}),
            self.tokenizer,
            image_token=self.image_token,
            separator_token=self.separator_token,
            patch_grid=self.patch_grid,
            pool_kernel=self.pool_kernel,
            v1_top_k=self.v1_top_k,
        )

    def _special_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {token} token (not a Llama-3 tokenizer?)")
        return token_id

    @property
    def version(self) -> int:
        return self.image_processor.geometry.version

    @property
    def zoom(self) -> str:
        return self.image_processor.zoom

    @property
    def grid(self) -> int:
        return self.patch_grid

    def crop_token_counts(self) -> list[int]:
        """Visual tokens of each kept crop of one image."""
        return crop_token_counts(
            self.version,
            self.zoom,
            self.patch_grid,
            self.image_processor.geometry,
            self.pool_kernel,
            self.v1_top_k,
        )

    def text_ids(self, prompt: str, max_length: int = 4096) -> list[int]:
        """The prompt's ids with special tokens (so it starts with <|begin_of_text|>), truncated
        to max_length / 2 - 1 tokens as the reference did."""
        return self.tokenizer(
            prompt, add_special_tokens=True, truncation=True, max_length=max_length // 2 - 1
        )["input_ids"]

    def layout(
        self,
        prompts: Sequence[str],
        images_per_sample: Sequence[int],
        max_length: int = 4096,
        padding_side: str = "left",
    ) -> dict[str, torch.Tensor]:
        """Padded `input_ids`, `attention_mask` and `image_patches_indices` of a batch."""
        text_ids = [self.text_ids(prompt, max_length) for prompt in prompts]
        return self.layout_ids(text_ids, images_per_sample, padding_side)

    def layout_ids(
        self,
        text_ids: Sequence[Sequence[int]],
        images_per_sample: Sequence[int],
        padding_side: str = "left",
    ) -> dict[str, torch.Tensor]:
        """`layout` for text that is already tokenized."""
        rows, index_rows = [], []
        counts = self.crop_token_counts()
        for ids_text, n_images in zip(text_ids, images_per_sample, strict=True):
            ids, indices = sample_layout(
                ids_text, n_images, counts, self.placeholder_id, self.separator_id
            )
            rows.append(ids)
            index_rows.append(indices)
        return pad_batch(rows, index_rows, self.pad_id, side=padding_side)

    def __call__(
        self,
        text: Sequence[str] | str,
        images: Sequence[Image.Image | Sequence[Image.Image] | None] | Image.Image | None = None,
        max_length: int = 4096,
        return_tensors: str = "pt",
        is_generate: bool = True,
    ) -> dict[str, Any]:
        """The released call shape: `input_ids`, `attention_mask`, `image_patches` (one
        [n_images * n_crops, 3, se, se] tensor per sample) and `image_patches_indices`, plus
        `images_per_sample`, which lets the model check that its zoom matches the processor's.

        Each entry of `images` is one image, a list of images (each gets its own block, in
        order), or None for a text-only sample. Generation pads on the left, scoring
        (`is_generate=False`) on the right.
        """
        if return_tensors != "pt":
            raise ValueError("only return_tensors='pt' is supported")
        prompts = [text] if isinstance(text, str) else list(text)
        per_sample = _images_per_sample(images, len(prompts))
        batch = self.layout(
            prompts,
            [len(ims) for ims in per_sample],
            max_length,
            padding_side="left" if is_generate else "right",
        )
        if is_generate:
            slack = torch.full((len(prompts), GENERATE_INDEX_SLACK), -1, dtype=torch.long)
            batch["image_patches_indices"] = torch.cat([batch["image_patches_indices"], slack], 1)
        batch["images_per_sample"] = [len(ims) for ims in per_sample]
        batch["image_patches"] = [
            torch.cat(self.image_processor(ims))
            if ims
            else torch.empty(
                0,
                3,
                self.image_processor.geometry.crop_size,
                self.image_processor.geometry.crop_size,
            )
            for ims in per_sample
        ]
        return batch

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, special tokens skipped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def check_model_zoom(processor: DragonflyProcessor, folder: Path) -> None:
    """Refuse a saved processor whose zoom differs from the model's config.json beside it: the
    model would get another number of crops per image than it expects."""
    if not (folder / "config.json").is_file():
        return  # a processor saved on its own
    model_zoom = read_config(folder).zoom
    if processor.zoom != model_zoom:
        raise ValueError(
            f"{folder}: the saved processor ({PROCESSOR_FILE}, preprocessor_config.json) has "
            f"zoom={processor.zoom!r} but the model's config.json has zoom={model_zoom!r}, and "
            "a processor feeds the model only at the model's zoom; pass "
            f"zoom={model_zoom!r} to the processor's from_pretrained, or load the model with "
            f"zoom={processor.zoom!r} as well (or save both at one zoom)"
        )


def _images_per_sample(images, n_prompts: int) -> list[list[Image.Image]]:
    if images is None:
        return [[] for _ in range(n_prompts)]
    if isinstance(images, Image.Image):
        images = [images]
    if len(images) != n_prompts:
        raise ValueError(f"{len(images)} image entries for {n_prompts} prompts")
    out = []
    for entry in images:
        if entry is None:
            out.append([])
        elif isinstance(entry, Image.Image):
            out.append([entry])
        else:
            out.append(list(entry))
    return out
