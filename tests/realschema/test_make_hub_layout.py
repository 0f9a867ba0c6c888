"""The hub-layout renderer: deterministic output, and each README declares the files it wrote."""

import yaml

from dragonfly_eval.datagen.make_hub_layout import write_layout


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_rendering_twice_writes_identical_files(tmp_path):
    write_layout(tmp_path / "a")
    write_layout(tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_each_readme_declares_every_parquet_file_of_its_repository(hub_mirror):
    for readme in hub_mirror.glob("*/*/README.md"):
        header = yaml.safe_load(readme.read_text().split("---\n")[1])
        declared = {
            path
            for config in header["configs"]
            for entry in config["data_files"]
            for path in readme.parent.glob(entry["path"])
        }
        assert declared == set(readme.parent.rglob("*.parquet")), readme
