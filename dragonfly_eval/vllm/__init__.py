"""Dragonfly on vLLM: the plugin that registers the model (`plugin`), the model and its
multimodal processor (`model`, imported by vLLM only), and an engine that answers the typed
requests of `dragonfly_eval.engine` through `vllm.LLM` (`engine`).

Importing this package imports neither vLLM nor torch.
"""

from pathlib import Path


def chat_template_path() -> Path:
    """The chat template for `vllm serve --chat-template`: image blocks first, as Dragonfly
    was trained (the tokenizer's own Llama-3 template would put them inside the text)."""
    return Path(__file__).with_name("chat_template.jinja")
