"""Numerical safety of an evaluation: non-finite logits found and redone in float32, and
deterministic kernels.

Half precision can overflow (fp16 activations past 65504 become inf, then NaN); greedy decoding
of NaN logits returns garbage without any error. The engine watches every batch's logits and
runs a batch that saw NaN/inf again with the model temporarily in float32 on the same device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import LogitsProcessor


class NonFiniteWatch(LogitsProcessor):
    """A pass-through logits processor that remembers which rows ever had broken scores.

    A row is broken when a score is NaN or +inf, or when every score is -inf (other processors
    may set single scores to -inf on purpose). The flags stay on the device until asked for.
    """

    def __init__(self) -> None:
        self.flags: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.mark(scores)
        return scores

    def mark(self, scores: torch.Tensor) -> None:
        """Record the rows of `scores` ([rows, ...]) that are broken."""
        flat = scores.detach().reshape(scores.shape[0], -1)
        bad = (
            torch.isnan(flat).any(dim=1)
            | torch.isposinf(flat).any(dim=1)
            | torch.isneginf(flat).all(dim=1)
        )
        self.flags = bad if self.flags is None else self.flags | bad

    def bad_rows(self) -> list[int]:
        """Rows that were broken at some step."""
        if self.flags is None:
            return []
        return torch.nonzero(self.flags).flatten().tolist()


@contextmanager
def float32_model(model: torch.nn.Module) -> Iterator[None]:
    """Run the block with every low-precision parameter and buffer of `model` in float32.

    Each tensor gets its own dtype back afterwards (buffers kept in float32 on purpose, such as
    rotary frequencies, stay float32). Widening is exact, so the round trip changes no weight.
    Peak memory grows by the float32 copy of the low-precision weights while the block runs.
    """
    changed: list[tuple[torch.nn.Module, str, bool, torch.dtype]] = []
    for module in model.modules():
        for kind, tensors in ((True, module._parameters), (False, module._buffers)):
            for name, tensor in tensors.items():
                if (
                    tensor is not None
                    and tensor.is_floating_point()
                    and tensor.dtype != torch.float32
                ):
                    changed.append((module, name, kind, tensor.dtype))
    seen: set[int] = set()

    def convert(module: torch.nn.Module, name: str, is_param: bool, dtype: torch.dtype) -> None:
        if is_param:
            param = module._parameters[name]
            if id(param) not in seen:  # tied weights are one Parameter seen from two modules
                seen.add(id(param))
                param.data = param.data.to(dtype)
        else:
            module._buffers[name] = module._buffers[name].to(dtype)

    for module, name, is_param, _ in changed:
        convert(module, name, is_param, torch.float32)
    try:
        yield
    finally:
        seen.clear()
        for module, name, is_param, dtype in changed:
            convert(module, name, is_param, dtype)


def enable_determinism(device: torch.device) -> None:
    """Ask torch for deterministic kernels, so two greedy runs give identical answers.

    Process-wide, as torch's switches are. `warn_only`: an operation without a deterministic
    kernel warns instead of ending the run. On CUDA, cuBLAS needs a fixed workspace to be
    deterministic; the variable only takes effect when set before the first cuBLAS call, which
    is why the harness calls this before loading the model.
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
