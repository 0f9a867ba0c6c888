"""Checkpoint folders built to break the loader: every one is a CheckpointError naming the file,
from the Python API and from `dragonfly-eval run` (one line, exit 2, before lmms-eval starts)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dragonfly_eval import DragonflyForCausalLM
from dragonfly_eval.harness import argcheck
from dragonfly_eval.modeling.checkpoint_files import CheckpointError
from dragonfly_eval.modeling.loading import read_config, weight_files
from dragonfly_eval.tiny.checkpoint import tiny_checkpoint

HUGE_INTEGER = "1" + "0" * 5000  # past Python's 4300-digit limit for int("...")
LONG_SHARD = "s" * 5000 + ".safetensors"  # no file system takes a name this long


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A writable copy of the embedded tiny checkpoint."""
    folder = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint(), folder)
    return folder


def with_huge_integer(folder: Path) -> Path:
    """The config's text hidden_size replaced by a 5001-digit integer; returns config.json."""
    config_file = folder / "config.json"
    text = json.dumps(json.loads(config_file.read_text()))
    hidden = json.loads(text)["text_config"]["hidden_size"]
    config_file.write_text(
        text.replace(f'"hidden_size": {hidden}', f'"hidden_size": {HUGE_INTEGER}', 1)
    )
    return config_file


def with_long_shard_name(folder: Path) -> Path:
    """An index naming one shard with a 5000-character name; returns the index file."""
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": {"lm_head.weight": LONG_SHARD}}))
    return index


@pytest.mark.parametrize("digits", [400, 5000])
def test_an_integer_too_large_for_a_float_in_config_json_is_a_checkpoint_error(checkpoint, digits):
    config_file = with_huge_integer(checkpoint)
    config_file.write_text(config_file.read_text().replace(HUGE_INTEGER, "7" * digits))
    with pytest.raises(CheckpointError, match=rf"config\.json: not valid JSON .*{digits} digits"):
        read_config(checkpoint)
    with pytest.raises(CheckpointError, match=r"config\.json"):
        DragonflyForCausalLM.from_pretrained(str(checkpoint))


def test_a_shard_name_too_long_for_the_file_system_is_a_checkpoint_error(checkpoint):
    index = with_long_shard_name(checkpoint)
    with pytest.raises(CheckpointError, match=r"index\.json: shard name 's+…' \(5012 characters\)"):
        weight_files(checkpoint)
    with pytest.raises(CheckpointError, match=r"index\.json") as err:
        DragonflyForCausalLM.from_pretrained(str(checkpoint))
    assert str(index) in str(err.value) and len(str(err.value)) < 500


def test_many_missing_shards_are_counted_not_all_listed(checkpoint):
    names = {f"t{i}": f"model-{i:05d}.safetensors" for i in range(40)}
    index = checkpoint / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": names}))
    with pytest.raises(CheckpointError, match=r"missing: 'model-00000.*and 35 more$"):
        weight_files(checkpoint)


@pytest.mark.parametrize("break_it", [with_huge_integer, with_long_shard_name])
def test_run_names_the_broken_checkpoint_file_in_one_line_before_lmms_eval_starts(
    checkpoint, tmp_path, offline_env, break_it
):
    named = break_it(checkpoint)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dragonfly_eval.cli", "run", "--output_path", str(out)]
    cmd += ["--model_args", f"pretrained={checkpoint},device=cpu", "--tasks"]
    cmd += ["dragonfly_mini_chart", "--limit", "1"]
    done = subprocess.run(cmd, env=offline_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"dragonfly-eval: cannot start: {named}: ")
    assert not out.exists()  # no run folder, lmms-eval never started


def test_the_pre_run_check_passes_a_sound_checkpoint_and_refuses_a_broken_one(checkpoint, capsys):
    assert argcheck.main([f"pretrained={checkpoint},device=cpu"]) == 0
    assert argcheck.main(["pretrained=dragonfly-tiny"]) == 0  # checked as it loads
    config_file = with_huge_integer(checkpoint)
    assert argcheck.main([f"pretrained={checkpoint}"]) == 2
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{config_file}: not valid JSON")
