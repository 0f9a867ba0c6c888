"""`python -m dragonfly_eval.harness.checkpoint_check MODEL_ARGS`: the checks of the local
checkpoint folder that `--model_args` names which read no tensor data (`loading.check_files`).

`dragonfly-eval run` runs it before lmms-eval starts, in a process of its own since the runner
never imports torch: a broken checkpoint is then one line and exit 2, not a traceback after
lmms-eval has started. A named checkpoint (`dragonfly-tiny`) or a hub id is checked when it loads.
Exit 0, or 2 with one line on stderr naming the file and the problem.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dragonfly_eval.engine.requests import as_bool
from dragonfly_eval.modeling.loading import NAMED_CHECKPOINTS, CheckpointError, check_files


def local_folder(model_args: dict[str, object]) -> Path | None:
    """The checkpoint folder `pretrained=` names, when it is a local folder."""
    pretrained = model_args.get("pretrained")
    if not isinstance(pretrained, str) or pretrained in NAMED_CHECKPOINTS:
        return None
    folder = Path(pretrained).expanduser()
    return folder if folder.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    """Check the checkpoint of one `--model_args` string; returns the exit code."""
    from lmms_eval.utils import simple_parse_args_string

    (model_args,) = sys.argv[1:] if argv is None else argv
    args = simple_parse_args_string(model_args)
    folder = local_folder(args)
    if folder is None:
        return 0
    try:
        check_files(folder, allow_pickle=as_bool(args.get("allow_pickle", False)))
    except CheckpointError as err:
        print(" ".join(str(err).split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
