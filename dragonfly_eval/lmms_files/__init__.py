"""Torch-free readers of the files lmms-eval writes and reads: results, sample logs, task YAMLs
and the task lookup, the task guard."""
