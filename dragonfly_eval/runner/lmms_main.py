"""`python -m dragonfly_eval.runner.lmms_main ARGS`: lmms-eval's command line, with its prompt
templates rendered in jinja2's sandbox and tar archives extracted through a member filter.

lmms-eval renders string prompts (`doc_to_text: "{{question}}"`) with an unsandboxed Jinja
environment. The task guard (`taskcheck.py`) refuses templates that spell out a name the sandbox
forbids; a name computed while rendering (`x[key]` with `key` taken from the document, which
Jinja falls back to reading as an attribute) is only known then, so `dragonfly-eval run` starts
lmms-eval through this module, which swaps lmms-eval's environment for a sandboxed one with the
same loader, undefined type and filters. A template that reaches for a forbidden attribute then
fails with jinja2's SecurityError instead of running.

lmms-eval extracts a video dataset's tar archives (`dataset_kwargs: video: true`) with
`extractall` and no filter, which writes absolute members and `a/../../x` outside the cache
folder; here every extraction without a filter of its own gets `tarfile.data_filter`.

Ctrl-C ends it quietly (exit 130): the `dragonfly-eval` that started it says how to continue.
"""

from __future__ import annotations

import sys
import tarfile

from jinja2.sandbox import SandboxedEnvironment

from dragonfly_eval.errors import ExitCode


def sandbox_templates() -> None:
    """Make lmms-eval render every prompt template in jinja2's sandbox."""
    import lmms_eval.utils

    plain = lmms_eval.utils.env
    sandboxed = SandboxedEnvironment(loader=plain.loader, undefined=plain.undefined)
    sandboxed.filters.update(plain.filters)
    lmms_eval.utils.env = sandboxed


def filter_tar_extraction() -> None:
    """Make every tar extraction that names no filter use `tarfile.data_filter` (members
    outside the target folder, links out of it and device files are refused)."""
    tarfile.TarFile.extraction_filter = staticmethod(tarfile.data_filter)


def main() -> None:
    """Run lmms-eval's command line (as `python -m lmms_eval`) with sandboxed templates and
    filtered tar extraction. Ctrl-C ends it with exit code 130 and no traceback: `dragonfly-eval`
    says how to continue."""
    try:
        from lmms_eval.cli.dispatch import main as lmms_eval_main

        sandbox_templates()
        filter_tar_extraction()
        lmms_eval_main()
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    main()
