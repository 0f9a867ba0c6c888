"""Work-arounds for lmms-eval 0.7.3 behaviour that would silently break this model's results.

lmms-eval 0.7.3 passes every model output through `unwrap_generation_output`, which turns anything
that is not text into `str(output)`. A loglikelihood answer `(loss, is_greedy)` becomes the string
"(2.31, False)", and every `multiple_choice` task (seedbench_ppl, ...) then fails in
`process_results` ("too many values to unpack"). `apply()` lets (number, bool) pairs through
unchanged, which is the contract its own `lmms.loglikelihood` docstring states.
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_dragonfly_loglikelihood_passthrough"


def _is_loglikelihood_pair(output: Any) -> bool:
    return (
        isinstance(output, tuple)
        and len(output) == 2
        and isinstance(output[0], (int, float))
        and not isinstance(output[0], bool)
        and isinstance(output[1], bool)
    )


def apply() -> None:
    """Patch lmms-eval's evaluator once; a no-op on versions without the function."""
    import lmms_eval.evaluator as evaluator

    original = getattr(evaluator, "unwrap_generation_output", None)
    if original is None or getattr(original, _PATCHED, False):
        return

    def unwrap(output: Any):
        if _is_loglikelihood_pair(output):
            return output, None
        return original(output)

    setattr(unwrap, _PATCHED, True)
    evaluator.unwrap_generation_output = unwrap
