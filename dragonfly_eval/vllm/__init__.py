"""Dragonfly on vLLM: the plugin that registers the model (`plugin`), the model and its
multimodal processor (`model`, imported by vLLM only), and an engine that answers the typed
requests of `dragonfly_eval.engine` through `vllm.LLM` (`engine`).

Importing this package imports neither vLLM nor torch.
"""
