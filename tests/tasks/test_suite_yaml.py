import yaml

from dragonfly_eval.paths import data_file
from dragonfly_eval.tasks import catalog


def _suite():
    return yaml.safe_load(data_file("suite.yaml").read_text())


def _produced_metrics(config: dict) -> set[str]:
    """The "<metric>,<filter>" keys a task or group writes to results.json."""
    names = [
        m["metric"] for m in config.get("metric_list") or config.get("aggregate_metric_list") or []
    ]
    filters = [f["name"] for f in config.get("filter_list") or []] or ["none"]
    return {f"{name},{filt}" for name in names for filt in filters}


def _entries(benchmark: dict):
    yield benchmark
    yield from (benchmark.get("extra") or {}).values()


def test_every_suite_column_is_a_benchmark_and_back():
    suite = _suite()
    columns = [key for keys in suite["suites"].values() for key in keys]
    assert len(columns) == len(set(columns))
    assert sorted(columns) == sorted(suite["benchmarks"])


def test_every_benchmark_names_existing_tasks_and_their_metrics():
    configs = catalog.task_configs()
    for key, benchmark in _suite()["benchmarks"].items():
        assert {"name", "task", "metric", "scale", "unit", "higher_is_better"} <= set(benchmark), (
            key
        )
        from dragonfly_eval.leaderboard.suite import UNITS

        assert benchmark["unit"] in UNITS
        for entry in _entries(benchmark):
            tasks = entry["task"] if isinstance(entry["task"], list) else [entry["task"]]
            for task in tasks:
                assert task in configs, (key, task)
                assert entry["metric"] in _produced_metrics(configs[task]), (
                    key,
                    task,
                    entry["metric"],
                )
            assert entry["scale"] in (1, 100), key


def test_scales_follow_each_metric_range():
    benchmarks = _suite()["benchmarks"]
    for key in ("mmvet", "mmbench", "mme"):
        assert benchmarks[key]["scale"] == 1, key
    assert benchmarks["mme"]["unit"] == "points"
    assert benchmarks["pope"]["task"] == [
        "dragonfly_pope_adv",
        "dragonfly_pope_pop",
        "dragonfly_pope_random",
    ]
    assert benchmarks["pope"]["metric"] == "pope_f1_score,none"
