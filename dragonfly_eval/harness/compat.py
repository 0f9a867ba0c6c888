"""Work-arounds for lmms-eval 0.7.3 behaviour that would silently break this model's results.

- lmms-eval passes every model output through `unwrap_generation_output`, which turns anything
  that is not text into `str(output)`. A loglikelihood answer `(loss, is_greedy)` becomes the
  string "(2.31, False)", and every `multiple_choice` task (seedbench_ppl, ...) then fails in
  `process_results` ("too many values to unpack"). Its response cache (`--use_cache`) stores
  answers as JSON and hands them back as lists, `[2.31, false]`, which meet the same fate on the
  second run. `apply()` lets (number, bool) pairs through, as tuples, whichever form they come in:
  the contract the `lmms.loglikelihood` docstring states.
- The response cache keys answers by the model name and its `--model_args`. The harness's
  bookkeeping args (`BOOKKEEPING_ARGS`: where its resume store and failure log live, which differ
  from run to run) decide no answer, so `apply()` leaves them out of that key, and adds the
  identity of the checkpoint's files instead, so that a checkpoint rewritten in place does not
  get the answers of the old one. A failed scoring request, `(inf, False)`, is not stored, as
  lmms-eval already does for an empty (failed) generation: the next run tries it again and
  reports it if it fails again, instead of serving the failure silently.
- lmms-eval skips a damaged `cache.db` (cut short by a killed copy or a full disk) when it reads,
  but merges the run's answers into it when the run ends, and that crash loses the results of the
  whole evaluation. `apply()` sets such a file aside first (renamed, with a warning): the answers
  are computed again and lmms-eval builds a fresh `cache.db`.
"""

from __future__ import annotations

import math
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

_PATCHED = "_dragonfly_patched"
BOOKKEEPING_ARGS = ("resume_store", "failure_report")


def _is_loglikelihood_pair(output: Any) -> bool:
    return (
        isinstance(output, (tuple, list))
        and len(output) == 2
        and isinstance(output[0], (int, float))
        and not isinstance(output[0], bool)
        and isinstance(output[1], bool)
    )


def apply() -> None:
    """Patch lmms-eval's evaluator and response cache once; each part is a no-op on versions
    without the function it patches."""
    _patch_unwrap()
    _patch_cache()


def _patch_unwrap() -> None:
    import lmms_eval.evaluator as evaluator

    original = getattr(evaluator, "unwrap_generation_output", None)
    if original is None or getattr(original, _PATCHED, False):
        return

    def unwrap(output: Any):
        if _is_loglikelihood_pair(output):
            return (float(output[0]), output[1]), None
        return original(output)

    setattr(unwrap, _PATCHED, True)
    evaluator.unwrap_generation_output = unwrap


def cache_model_args(model: Any, model_args: Any) -> Any:
    """The `--model_args` lmms-eval's response cache should key the dragonfly model's answers
    by: without the bookkeeping args, with the checkpoint's file identity."""
    if model != "dragonfly" or not isinstance(model_args, (str, dict)):
        return model_args
    from lmms_eval.utils import simple_parse_args_string

    from dragonfly_eval.run_store import checkpoint_identity

    args = (
        dict(model_args) if isinstance(model_args, dict) else simple_parse_args_string(model_args)
    )
    args = {k: v for k, v in args.items() if k not in BOOKKEEPING_ARGS}
    args["checkpoint_files"] = checkpoint_identity(str(args.get("pretrained", "")))
    return args


def set_aside_damaged_cache(cache_root: str) -> Path | None:
    """Rename `<cache_root>/cache.db` (and its WAL files) aside when SQLite cannot read it;
    returns the new name, or None when there is nothing to set aside."""
    from loguru import logger

    from dragonfly_eval.run_store import sqlite_problem

    root = Path(cache_root).resolve()  # lmms-eval takes a "*.db" path to mean its folder
    db = (root.parent if root.name.endswith(".db") else root) / "cache.db"
    if not db.is_file():
        return None
    with closing(sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)) as conn:
        problem = sqlite_problem(conn)
    if problem is None:
        return None
    aside = db.with_name(f"cache.db.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        part = db.with_name(db.name + suffix)
        if part.exists():
            part.rename(aside.with_name(aside.name + suffix))
    logger.warning(
        f"dragonfly: lmms-eval's response cache {db} is damaged ({problem}); set it aside as "
        f"{aside}. Its answers are computed again and a fresh cache.db is written at the end."
    )
    return aside


def _patch_cache() -> None:
    try:
        from lmms_eval.caching.response_cache import ResponseCache
    except ImportError:
        return
    create = ResponseCache.create
    valid = getattr(ResponseCache, "_is_valid_response", None)
    if valid is None or getattr(create, _PATCHED, False):
        return

    def keyed_create(cache_root: str, *, model: Any = "", model_args: Any = "", **kwargs: Any):
        set_aside_damaged_cache(cache_root)
        args = cache_model_args(model, model_args)
        return create(cache_root, model=model, model_args=args, **kwargs)

    def finite_valid(response: Any, request_type: str) -> bool:
        if _is_loglikelihood_pair(response) and not math.isfinite(response[0]):
            return False
        return valid(response, request_type)

    setattr(keyed_create, _PATCHED, True)
    ResponseCache.create = staticmethod(keyed_create)
    ResponseCache._is_valid_response = staticmethod(finite_valid)
