"""Fixtures of the vLLM tests (see vllm_kit): the random released-format checkpoints, and the
CPU engine environment for lmms-eval subprocesses and for an in-process engine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.on_vllm.vllm_kit import ENGINE_ENV, write_released_checkpoint


@pytest.fixture(scope="session")
def released_checkpoint(tmp_path_factory):
    """Write (once per session) the random released-format checkpoint of a version."""
    written: dict[int, Path] = {}

    def make(version: int) -> Path:
        if version not in written:
            folder = tmp_path_factory.mktemp(f"dragonfly-v{version}-random")
            written[version] = write_released_checkpoint(folder, version, seed=version)
        return written[version]

    return make


@pytest.fixture(scope="session")
def engine_env(offline_env) -> dict[str, str]:
    """The offline environment of lmms-eval subprocesses, with the CPU engine settings."""
    return {**offline_env, **ENGINE_ENV}


@pytest.fixture(scope="module")
def in_process_engine_env():
    """The CPU engine settings in this process, for a module's in-process engine."""
    saved = {k: os.environ.get(k) for k in ENGINE_ENV}
    os.environ.update(ENGINE_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
