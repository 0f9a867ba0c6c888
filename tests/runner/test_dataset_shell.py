"""Task code that hands a dataset's strings to a shell is refused before the run unless the
user passes --trust-dataset-commands, and tar archives lmms-eval extracts under
`dragonfly-eval run` go through a member filter.

Controls first show what lmms-eval 0.7.3 itself does with such data."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import lmms_eval.cli.dispatch
import pytest
from lmms_eval.tasks.hd_epic.utils import hd_epic_doc_to_visual

from dragonfly_eval.cli import main
from dragonfly_eval.runner import lmms_main
from dragonfly_eval.runner import start as runner

HD_EPIC_VISUAL = "lmms_eval.tasks.hd_epic.utils.hd_epic_doc_to_visual"


def hostile_row(tmp_path, marker) -> dict:
    """An HD-EPIC document whose video_dir runs `touch MARKER` in a shell (the video file
    exists, so lmms-eval goes on to cut a clip from it with ffmpeg)."""
    video_dir = f"{tmp_path}/v$(touch${{IFS}}{marker})"
    (Path(video_dir) / "P01").mkdir(parents=True)
    (Path(video_dir) / "P01" / "P01-1.mp4").write_bytes(b"")
    return {
        "video_dir": video_dir,
        "video_ids": ["P01-1"],
        "start_times": [0.0],
        "end_times": [1.0],
        "question": "q",
        "answer": "a",
    }


def task_folder(tmp_path, rows: list[dict], extra: str, dataset_kwargs: str = "") -> Path:
    """An --include_path folder with the task dragonfly_shell_x over `rows` (a local file)."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    data = folder / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "task.yaml").write_text(
        "task: dragonfly_shell_x\ndataset_path: json\ntest_split: test\n"
        "output_type: generate_until\ndoc_to_text: '{{question}}'\ndoc_to_target: answer\n"
        f"{extra}dataset_kwargs:\n{dataset_kwargs}  data_files:\n    test: {data}\n"
    )
    return folder


@pytest.fixture
def started(monkeypatch) -> list:
    """The lmms-eval command lines `dragonfly-eval run` starts (none is run: each 'fails')."""
    commands: list = []
    monkeypatch.setattr(runner, "relay", lambda cmd: commands.append(cmd) or (1, ""))
    return commands


def run(tmp_path, capsys, folder, *flags: str) -> tuple[int, str]:
    argv = ["run", "--output_path", str(tmp_path / "out"), "--include_path", str(folder)]
    code = main([*argv, "--tasks", "dragonfly_shell_x", *flags])
    return code, capsys.readouterr().err


def test_a_doc_to_visual_that_shells_out_with_the_row_s_video_dir_is_refused(
    tmp_path, capsys, monkeypatch, started
):
    marker = tmp_path / "marker"
    monkeypatch.delenv("HD_EPIC_VIDEO_DIR", raising=False)
    row = hostile_row(tmp_path, marker)
    hd_epic_doc_to_visual(row)  # control: lmms-eval's helper runs the row's command
    assert marker.exists()
    marker.unlink()
    folder = task_folder(tmp_path, [row], f"doc_to_visual: !function {HD_EPIC_VISUAL}\n")

    code, err = run(tmp_path, capsys, folder)
    assert code == 2 and started == [], err
    assert "task dragonfly_shell_x" in err and HD_EPIC_VISUAL in err and "shell" in err
    assert "--trust-dataset-commands" in err
    assert not marker.exists()

    code, err = run(tmp_path, capsys, folder, "--trust-dataset-commands")
    assert len(started) == 1, err  # the user vetted the dataset: the run starts


def test_from_youtube_is_refused_without_the_flag(tmp_path, capsys, started):
    row = {"videoID": "x; touch m", "question": "q", "answer": "a"}
    folder = task_folder(tmp_path, [row], "", "  From_YouTube: true\n")
    code, err = run(tmp_path, capsys, folder)
    assert code == 2 and started == [], err
    assert "From_YouTube" in err and "videoID" in err and "--trust-dataset-commands" in err


def hostile_tar(path, outside) -> None:
    """A tar with a member at an absolute path and one that climbs out with `..`."""
    with tarfile.open(path, "w") as tar:
        sub = tarfile.TarInfo("sub")
        sub.type = tarfile.DIRTYPE
        tar.addfile(sub)
        for name in (str(outside / "absolute"), "sub/../../climbed"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"ok"))


def test_tar_extraction_under_run_uses_a_member_filter(tmp_path, monkeypatch):
    archive, cache = tmp_path / "videos.tar", tmp_path / "cache" / "task"
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile_tar(archive, outside)
    cache.mkdir(parents=True)
    monkeypatch.setattr(tarfile.TarFile, "extraction_filter", tarfile.TarFile.extraction_filter)
    with tarfile.open(archive, "r") as tar:  # control: lmms-eval's call, unfiltered
        tar.extractall(cache)
    assert (outside / "absolute").exists() and (tmp_path / "cache" / "climbed").exists()
    (outside / "absolute").unlink()
    (tmp_path / "cache" / "climbed").unlink()

    refused = []

    def lmms_eval_extracts() -> None:
        with tarfile.open(archive, "r") as tar:  # as lmms-eval's untar_video_data calls it
            try:
                tar.extractall(cache)
            except tarfile.FilterError as err:
                refused.append(err)

    monkeypatch.setattr(lmms_eval.cli.dispatch, "main", lmms_eval_extracts)
    monkeypatch.setattr(lmms_main, "sandbox_templates", lambda: None)
    lmms_main.main()
    assert refused
    assert not (outside / "absolute").exists()
    assert not (tmp_path / "cache" / "climbed").exists()
