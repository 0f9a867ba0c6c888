"""`python -m dragonfly_eval.harness.argcheck MODEL_ARGS...`: the `--model_args` of planned
runs of the `dragonfly` model, checked as the model reads them, before any run starts.

The runner first checks what needs no torch itself (`harness.model_args.quick_problems`: names,
a checkpoint path that is no folder) and starts this check only when that found nothing. Here:
names (with the nearest valid name for a misspelt one), values, the checkpoint (a local folder's
config and weight files, read without tensor data: `loading.check_files`; a folder that does not
exist; a hub id that an offline machine has not downloaded) and the zoom setting against the
checkpoint's version (a hub checkpoint only when it is already in the local cache). Prints one
problem per line and exits 2 when there is one. The runner (torch-free) starts it as a child
process, as it starts lmms-eval, once for all the runs it plans.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lmms_eval.utils import simple_parse_args_string

from dragonfly_eval.engine.requests import as_bool
from dragonfly_eval.errors import ExitCode
from dragonfly_eval.harness.model import engine_settings, parse_device_resize
from dragonfly_eval.harness.model_args import (
    DEFAULT_PRETRAINED,
    not_a_folder,
    unknown_names_problem,
    valid_model_args,
)
from dragonfly_eval.modeling import released
from dragonfly_eval.modeling.checkpoint_files import CheckpointError
from dragonfly_eval.modeling.loading import (
    NAMED_CHECKPOINTS,
    check_files,
    looks_like_hub_id,
    read_config,
    resolve_checkpoint,
)

SETTINGS = (
    "batch_size",
    "max_length",
    "image_cache",
    "image_cache_mb",
    "prefix_cache",
    "prefix_cache_mb",
    "prefetch",
)


def model_args_problems(model_args: str) -> list[str]:
    """What the `dragonfly` model would refuse in `model_args`, one line each."""
    try:
        args = simple_parse_args_string(model_args)
    except ValueError as err:
        return [f"--model_args {model_args!r}: cannot be read ({err})"]
    unknown = sorted(set(args) - set(valid_model_args("dragonfly")))
    if unknown:
        return [unknown_names_problem("dragonfly", unknown)]
    problems = []
    if args.get("max_batch_size") is not None:
        problems.append("max_batch_size is not supported by dragonfly: give batch_size=N")
    checks = [
        lambda: engine_settings(**{k: args[k] for k in SETTINGS if k in args}),
        lambda: parse_device_resize(args.get("device_resize", "auto")),
        lambda: as_bool(args.get("allow_pickle", False)),
        lambda: as_bool(args.get("deterministic", True)),
    ]
    for check in checks:
        try:
            check()
        except (TypeError, ValueError) as err:
            problems.append(f"--model_args {model_args!r}: {err}")
    checkpoint = checkpoint_problem(args)
    if checkpoint:
        return [*problems, checkpoint]
    return problems + zoom_problems(args)


def checkpoint_problem(args: dict) -> str | None:
    """Why the checkpoint `pretrained=` names cannot load, found without reading a tensor: a
    local folder's config or weight files, a folder that does not exist, or a hub id that this
    offline machine has not downloaded. None when it can load (or will be downloaded)."""
    pretrained = str(args.get("pretrained", DEFAULT_PRETRAINED))
    if pretrained in NAMED_CHECKPOINTS:
        return None  # written by this package on first use
    folder = Path(pretrained).expanduser()
    if folder.is_dir():
        try:
            check_files(folder, allow_pickle=as_bool(args.get("allow_pickle", False)))
        except CheckpointError as err:
            return " ".join(str(err).split())
        return None
    if folder.exists() or not looks_like_hub_id(pretrained):
        return not_a_folder(pretrained)
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE and _local_checkpoint(pretrained, args.get("revision")) is None:
        return (
            f"pretrained={pretrained}: no such folder, and this hub checkpoint is not in the "
            "Hugging Face cache while HF_HUB_OFFLINE is set; download it with `hf download "
            f"{pretrained}` where there is network, or pass a local folder"
        )
    return None


def zoom_problems(args: dict) -> list[str]:
    """The zoom setting against the version of a checkpoint found on this machine."""
    zoom = args.get("zoom")
    if zoom is None:
        return []
    pretrained = str(args.get("pretrained", DEFAULT_PRETRAINED))
    folder = _local_checkpoint(pretrained, args.get("revision"))
    if folder is None:
        return []  # a hub checkpoint not downloaded yet: the run checks it after the download
    try:
        version = read_config(folder).version
    except CheckpointError as err:
        return [str(err)]
    if zoom not in released.ZOOMS.get(version, ()):
        return [
            f"zoom={zoom} is not valid for {pretrained} (Dragonfly v{version}); choose from "
            f"{', '.join(released.ZOOMS.get(version, ()))}"
        ]
    return []


def _local_checkpoint(pretrained: str, revision: object) -> Path | None:
    """The checkpoint folder when it is on this machine (named, a folder, or in the HF cache)."""
    if pretrained in NAMED_CHECKPOINTS or Path(pretrained).expanduser().is_dir():
        return resolve_checkpoint(pretrained)
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(pretrained, "config.json", revision=revision or None)
    except ValueError:  # not a hub id either: the run says so
        return None
    return Path(found).parent if isinstance(found, str) else None


def main(argv: list[str] | None = None) -> int:
    """Check each argument as one run's model_args; exit 2 when any has a problem."""
    problems = [p for model_args in (argv or sys.argv[1:]) for p in model_args_problems(model_args)]
    for problem in dict.fromkeys(problems):
        print(problem)
    return ExitCode.USAGE if problems else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
