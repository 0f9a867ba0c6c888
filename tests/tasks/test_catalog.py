from dragonfly_eval.tasks import catalog


def test_dataset_of_reads_the_yaml_dataset_path():
    assert catalog.dataset_of("dragonfly_ai2d") == "lmms-lab-encoder/ai2d"
    assert catalog.dataset_of("dragonfly_vqa_rad") == "flaviagiammarino/vqa-rad"
    assert catalog.dataset_of("dragonfly_mini_vqa") == "json"


def test_dataset_of_unknown_task_or_group_is_none():
    assert catalog.dataset_of("dragonfly_no_such_task") is None
    assert catalog.dataset_of("dragonfly_general") is None


def test_tasks_using_dataset_maps_an_id_back_to_tasks():
    assert catalog.tasks_using_dataset("lmms-lab-encoder/POPE") == [
        "dragonfly_pope_adv",
        "dragonfly_pope_pop",
        "dragonfly_pope_random",
    ]


def test_catalog_reads_any_folder(tmp_path):
    (tmp_path / "t.yaml").write_text(
        "task: dragonfly_x\ndataset_path: me/data\ndoc_to_text: !function a.b.c\n"
    )
    assert catalog.task_configs(tmp_path)["dragonfly_x"]["doc_to_text"] == "a.b.c"
    assert catalog.dataset_of("dragonfly_x", tmp_path) == "me/data"
