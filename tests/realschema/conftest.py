"""The real-schema suite's fixtures: hub-layout copies of the datasets behind lmms-eval's built-in
tasks (rendered once per session) and the test-only `oracle` model registered by entry point."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from realschema_kit import HERE

from dragonfly_eval.datagen.make_hub_layout import write_layout


@pytest.fixture(scope="session")
def hub_mirror(tmp_path_factory) -> Path:
    """A folder holding `lmms-lab-encoder/<name>/` copies; lmms-eval runs with it as cwd."""
    root = tmp_path_factory.mktemp("hub_mirror")
    write_layout(root)
    return root


@pytest.fixture(scope="session")
def oracle_plugin(tmp_path_factory) -> Path:
    """A folder that, on PYTHONPATH, makes importlib.metadata see an installed distribution with
    the entry point `lmms_eval.models: oracle` (nothing is installed into the venv)."""
    root = tmp_path_factory.mktemp("oracle_plugin")
    info = root / "oracle_model-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: oracle-model\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[lmms_eval.models]\noracle = oracle_model:MANIFEST\n")
    return root


@pytest.fixture(scope="session")
def realschema_env(offline_env, oracle_plugin, tmp_path_factory) -> dict[str, str]:
    """Offline environment with the oracle plugin importable, a fresh HF_HOME (the datasets
    cache of the copies) and no Hugging Face token: the local copies must load without one."""
    env = dict(offline_env)
    env["PYTHONPATH"] = os.pathsep.join([str(oracle_plugin), str(HERE), env["PYTHONPATH"]])
    env["HF_HOME"] = str(tmp_path_factory.mktemp("hf_home"))
    for name in ("HF_TOKEN", "HF_TOKEN_PATH", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(name, None)
    return env
