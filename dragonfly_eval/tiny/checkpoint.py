"""The checkpoint folder of `dragonfly-tiny`, written on first use from the shipped files.

The folder (config, safetensors weights, tokenizer, processor, generation config) is written
once into the cache (`paths.cache_root()`), named by a hash of everything that decides its
contents; from then on `dragonfly-tiny` is loaded like any other checkpoint folder. Importing
this module registers the name with `modeling.loading` (the package's top level imports it
when transformers is imported, as it registers the Auto classes).
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

from dragonfly_eval.modeling.loading import register_checkpoint
from dragonfly_eval.modeling.modeling import DragonflyForCausalLM
from dragonfly_eval.modeling.processing import DragonflyProcessor
from dragonfly_eval.paths import cache_root
from dragonfly_eval.tiny import assets_dir
from dragonfly_eval.tiny.config import tiny_config
from dragonfly_eval.tiny.tokenizer import build_tiny_tokenizer, tokenizer_path

TINY_NAME = "dragonfly-tiny"
FORMAT = 2  # bump when write_tiny_checkpoint changes what it writes


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_path() -> Path:
    """The shipped trained weights of dragonfly-tiny (written by `dragonfly_eval.tiny.train`)."""
    path = assets_dir() / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"the trained dragonfly-tiny weights {path} are missing; train them with "
            "`python -m dragonfly_eval.tiny.train` (about 20 minutes on 2 CPU cores)"
        )
    return path


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


def build_tiny_processor(zoom: str | None = None) -> DragonflyProcessor:
    """The processor of the tiny model, loaded from its checkpoint folder."""
    return DragonflyProcessor.from_pretrained(TINY_NAME, zoom=zoom)


register_checkpoint(TINY_NAME, tiny_checkpoint)
