"""`dragonfly-tiny`: the embedded Dragonfly, for the offline demo and CI runs.

The real v2 zoom geometry with small widths (`config`), a small byte-level BPE with the
Llama-3 special tokens (`tokenizer`), weights trained on the mini suite's kinds of scenes
(`train`), and the checkpoint folder written from them on first use (`checkpoint`, which
registers the name `dragonfly-tiny`). The tokenizer, the weights and their training record ship
in `assets/`. This package sits above `modeling`, which never imports it; see
docs/embedded-model.md.
"""

from __future__ import annotations

from pathlib import Path


def assets_dir() -> Path:
    """The shipped files of dragonfly-tiny: tokenizer, trained weights, training record."""
    return Path(__file__).resolve().parent / "assets"
