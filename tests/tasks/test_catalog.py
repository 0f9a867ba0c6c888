from dragonfly_eval.tasks import catalog


def test_catalog_reads_any_folder(tmp_path):
    (tmp_path / "t.yaml").write_text(
        "task: dragonfly_x\ndataset_path: me/data\ndoc_to_text: !function a.b.c\n"
    )
    assert catalog.task_configs(tmp_path)["dragonfly_x"]["doc_to_text"].target == "a.b.c"
    assert catalog.task_configs(tmp_path)["dragonfly_x"]["dataset_path"] == "me/data"
