"""`dragonfly-tiny`: a small Dragonfly trained on rendered images, for demos and offline CI runs.

The real zoom geometry (v2: 41 crops of 336 px, 577 tokens per crop, 2098 positions per image) with
small widths, and a small byte-level BPE tokenizer with the Llama-3 special tokens. Its weights are
trained by `python -m dragonfly_eval.tiny_train` on the mini suite's kinds of scenes (drawn from
another seed than the suite's) and ship in the package with the tokenizer: no download, no shared
files. It answers the mini suite's questions well above chance, and its fine-detail task only
with the zoomed-in crops.

It is data: on first use a checkpoint folder (config, safetensors weights, tokenizer, processor,
generation config) is written once into the cache (`tiny_checkpoint`), named by a hash of
everything that decides its contents, and from then on `dragonfly-tiny` is loaded like any other
checkpoint folder.

Regenerate the shipped tokenizer with `python -m dragonfly_eval.modeling.tiny` (then retrain).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import CLIPVisionConfig, LlamaConfig, PreTrainedTokenizerFast

from dragonfly_eval.modeling.configuration import DragonflyConfig
from dragonfly_eval.modeling.loading import register_checkpoint
from dragonfly_eval.modeling.modeling import DragonflyForCausalLM
from dragonfly_eval.modeling.processing import DragonflyProcessor
from dragonfly_eval.paths import cache_root

TINY_NAME = "dragonfly-tiny"
FORMAT = 2  # bump when write_tiny_checkpoint changes what it writes
SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    *[f"<|reserved_special_token_{i}|>" for i in range(6)],
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
TOKENIZER_VOCAB = 512
_CORPUS = """
What is written on the sign? Answer the question using a single word or phrase.
Answer the question with a single word. Answer with the option's letter from the given choices
directly. Is there a red circle in the image? Please answer yes or no. Describe the image in detail.
Provide a one-sentence caption for the provided image. What is the value of the tallest bar?
What is the title of the document? How many shapes are there? The quick brown fox jumps over the
lazy dog. A photo of a cat sitting on a chair. Options: A. red B. green C. blue D. yellow.
yes no 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 stop open closed left right top bottom sales revenue
"""


def assets_dir() -> Path:
    """The shipped dragonfly-tiny folder: tokenizer, trained weights and their training record."""
    return Path(__file__).resolve().parents[1] / "assets" / TINY_NAME


def tokenizer_path() -> Path:
    """The shipped tokenizer.json of dragonfly-tiny."""
    return assets_dir() / "tokenizer.json"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_path() -> Path:
    """The shipped trained weights of dragonfly-tiny (written by `dragonfly_eval.tiny_train`)."""
    path = assets_dir() / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"the trained dragonfly-tiny weights {path} are missing; train them with "
            "`python -m dragonfly_eval.tiny_train` (about 20 minutes on 2 CPU cores)"
        )
    return path


def train_tokenizer(path: Path) -> None:
    """Train the small byte-level BPE (deterministic) and write it to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.split("\n"), trainer=trainer)
    bos = SPECIAL_TOKENS[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """The shipped tokenizer as a transformers fast tokenizer."""
    return PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_path()),
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|end_of_text|>",
    )


def v2_config(vision: dict, text: dict, image_encoder: str) -> DragonflyConfig:
    """A Dragonfly v2 config (336 px crops, patch 14, Llama-3 special ids, no rope scaling) with
    the tower and language-model widths given; for the embedded model and benchmarks."""
    vision_config = CLIPVisionConfig(
        **vision, image_size=336, patch_size=14, hidden_act="quick_gelu"
    )
    text_config = LlamaConfig(
        **text,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
    )
    return DragonflyConfig(
        text_config=text_config.to_dict(),
        vision_config=vision_config.to_dict(),
        image_encoder=image_encoder,
        rope_scaling=None,
    )


def tiny_config(vocab_size: int) -> DragonflyConfig:
    """Dragonfly v2 geometry with small widths."""
    return v2_config(
        vision=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            projection_dim=32,
        ),
        text=dict(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            rms_norm_eps=1e-6,
        ),
        image_encoder="dragonfly-tiny",
    )


def tiny_digest() -> str:
    """A hash of everything that decides the tiny checkpoint's files: format, weights,
    tokenizer, config, and the transformers version (which writes the folder)."""
    tokenizer = build_tiny_tokenizer()
    parts = [
        str(FORMAT),
        file_sha256(weights_path()),
        file_sha256(tokenizer_path()),
        json.dumps(tiny_config(len(tokenizer)).to_dict(), sort_keys=True, default=str),
        transformers.__version__,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def tiny_checkpoint() -> Path:
    """The tiny checkpoint folder, written on first use.

    Written into a private temporary folder beside the target and renamed into place, so a
    process never sees a half-written folder and two processes racing both end up loading the
    same complete one (the loser of the rename discards its copy).
    """
    folder = cache_root() / f"{TINY_NAME}-{tiny_digest()}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write_tiny_checkpoint(scratch)
        os.rename(scratch, folder)
    except OSError:
        if not (folder / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


@torch.no_grad()
def write_tiny_checkpoint(folder: Path) -> None:
    """Load the shipped trained weights into the tiny model (float32) and save it with its
    tokenizer, processor and generation config as a checkpoint folder."""
    from safetensors.torch import load_file

    tokenizer = build_tiny_tokenizer()
    config = tiny_config(len(tokenizer))
    model = DragonflyForCausalLM(config)
    model.load_state_dict(load_file(str(weights_path())), strict=True)
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    generation = model.language_model.generation_config
    generation.eos_token_id = [tokenizer.eos_token_id, eot]
    generation.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    generation.save_pretrained(folder)
    DragonflyProcessor.for_config(config, tokenizer).save_pretrained(folder)


def build_tiny_model(dtype=None, device=None, zoom: str | None = None):
    """The tiny model, loaded from its checkpoint folder."""
    return DragonflyForCausalLM.from_pretrained(TINY_NAME, dtype=dtype, device=device, zoom=zoom)


def build_tiny_processor(zoom: str | None = None):
    """The processor of the tiny model, loaded from its checkpoint folder."""
    return DragonflyProcessor.from_pretrained(TINY_NAME, zoom=zoom)


register_checkpoint(TINY_NAME, tiny_checkpoint)


if __name__ == "__main__":
    train_tokenizer(tokenizer_path())
    print(f"wrote {tokenizer_path()}")
