"""The `--model_args` names the lmms-eval models `dragonfly` and `dragonfly_vllm` accept, and the
checks of a command line's model_args that need neither torch nor the model: declared here once,
read by the model classes (`harness.model`, `harness.vllm_model`) and by the runner's pre-run
check, which runs in the torch-free `dragonfly-eval` process before anything slow starts.
"""

from __future__ import annotations

import difflib
from pathlib import Path

DEFAULT_PRETRAINED = "togethercomputer/Llama-3.1-8B-Dragonfly-v2"
# the harness's own keys, which both models take (their run files)
RUN_FILES = ("failure_report", "resume_store")
MODEL_ARGS = {
    "dragonfly": (
        "allow_pickle",
        "attn_implementation",
        "batch_size",
        "deterministic",
        "device",
        "device_map",
        "device_resize",
        "dtype",
        "image_cache",
        "image_cache_mb",
        "max_batch_size",
        "max_length",
        "prefetch",
        "prefix_cache",
        "prefix_cache_mb",
        "pretrained",
        "revision",
        "zoom",
        *RUN_FILES,
    ),
    "dragonfly_vllm": (
        "batch_size",
        "data_parallel_size",
        "device",
        "dtype",
        "enable_prefix_caching",
        "enforce_eager",
        "gpu_memory_utilization",
        "max_batch_size",
        "max_length",
        "max_model_len",
        "max_num_seqs",
        "pretrained",
        "revision",
        "tensor_parallel_size",
        "zoom",
        *RUN_FILES,
    ),
}
# characters after which lmms-eval splits model_args with its quote- and brace-aware splitter
_STRUCTURED = "\"'{}[]"


def valid_model_args(model: str) -> list[str]:
    """The names `model` ("dragonfly" or "dragonfly_vllm") accepts in --model_args, sorted."""
    return sorted(MODEL_ARGS[model])


def model_args_pairs(model_args: str) -> dict[str, str] | None:
    """name -> raw value of a --model_args string split as lmms-eval splits a plain one (by
    commas, each part stripped, empty parts dropped, each `name=value`); None when it holds quotes or brackets (lmms-eval then splits it
    its own way, left to the model's check) or a part without `=` (which lmms-eval refuses)."""
    text = model_args.strip()
    if not text:
        return {}
    if any(char in text for char in _STRUCTURED):
        return None
    parts = [part.strip().split("=", 1) for part in text.split(",") if part.strip()]
    if not all(len(part) == 2 for part in parts):
        return None
    return {name: value for name, value in parts}


def unknown_names_problem(model: str, unknown: list[str]) -> str:
    """The line for model_args names `model` does not take, with the nearest valid name of each
    misspelt one."""
    valid = valid_model_args(model)
    hints = []
    for name in unknown:
        near = difflib.get_close_matches(name, valid, n=1)
        hints.append(f"{name} (did you mean {near[0]}?)" if near else name)
    return f"unknown model_args for {model}: {', '.join(hints)}; valid: {', '.join(valid)}"


def missing_folder_problem(pretrained: str) -> str | None:
    """Why `pretrained=` cannot name a checkpoint, when it is a path (it holds `/` or starts with
    `.` or `~`, and is no hub id `org/name`) that is no folder on this machine; None otherwise
    (a folder, a named checkpoint such as dragonfly-tiny, a hub id: the model's check reads
    those)."""
    looks_like_path = "/" in pretrained or pretrained.startswith((".", "~"))
    hub_id = pretrained.count("/") == 1 and not pretrained.startswith((".", "/", "~"))
    if not looks_like_path or hub_id:
        return None
    return None if Path(pretrained).expanduser().is_dir() else not_a_folder(pretrained)


def not_a_folder(pretrained: str) -> str:
    """The line for a `pretrained=` path that is a file or nothing, naming the fix."""
    if Path(pretrained).expanduser().exists():
        return f"pretrained={pretrained}: is a file; give the checkpoint's folder"
    return (
        f"pretrained={pretrained}: no such folder; download with `hf download "
        f"{DEFAULT_PRETRAINED} --local-dir {pretrained}` (or another Dragonfly release) or pass "
        "a local folder"
    )


def quick_problems(model: str, model_args: str) -> list[str] | None:
    """What `model` would refuse in `model_args` that is seen from the names and the file system
    alone (unknown names, a checkpoint path that is no folder); None when the string is not
    split here (see `model_args_pairs`)."""
    pairs = model_args_pairs(model_args)
    if pairs is None:
        return None
    unknown = sorted(set(pairs) - set(MODEL_ARGS[model]))
    if unknown:
        return [unknown_names_problem(model, unknown)]
    missing = missing_folder_problem(pairs.get("pretrained", DEFAULT_PRETRAINED))
    return [missing] if missing else []
