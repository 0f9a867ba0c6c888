"""Torch-free readers of lmms-eval's files: task YAMLs, the task index, results and sample logs."""
