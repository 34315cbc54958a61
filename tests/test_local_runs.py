"""`mer runs`: run folders read back as what they ran, finished or not, damaged or not."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from mercore.local_runs import config_differences, list_runs, runs_table

CONFIG = {"meta": {"method": "ststnet", "variant": None, "profile": "quick", "dataset": "smic-flow", "task": "megc3",
                   "subjects": 16},
          "run": {"seed": 2}, "train": {"lr": 0.001, "epochs": 3}}


def run_folder(root: Path, name: str, config: dict, folds: int, summary: dict | None = None) -> Path:
    folder = root / "runs" / name
    (folder / "folds").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))  # as mer run writes it when it starts
    for i in range(folds):
        (folder / "folds" / f"{i:03d}.json").write_text(json.dumps({"identity": {"config": "hash"}, "keys": []}))
    if summary is not None:
        (folder / "artifacts").mkdir()
        (folder / "artifacts" / "summary.json").write_text(json.dumps(summary))
        (folder / "artifacts" / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_differences_leave_meta_out_and_name_new_keys():
    defaults = {"meta": {"method": "other"}, "run": {"seed": 0}, "train": {"lr": 0.001, "epochs": 8}}
    assert config_differences(CONFIG, defaults) == {"run.seed": 2, "train.epochs": 3}
    assert config_differences(defaults, defaults) == {}


def test_finished_partial_and_damaged_folders(tmp_path):
    run_folder(tmp_path, "ststnet-smic-flow-aaa", CONFIG, 16, {"overall": {"uf1": 0.61234, "uar": 0.6}})
    run_folder(tmp_path, "ststnet-smic-flow-bbb", CONFIG, 5)
    broken = run_folder(tmp_path, "htnet-smic-flow-ccc", CONFIG, 1)
    (broken / "config.yaml").unlink()  # an unfinished run of an older mer
    runs = {r.folder.name: r for r in list_runs(tmp_path, lambda c: {**c, "train": {"lr": 0.001, "epochs": 8}})}
    done, partial, damaged = runs["ststnet-smic-flow-aaa"], runs["ststnet-smic-flow-bbb"], runs["htnet-smic-flow-ccc"]
    assert done.finished and done.uf1 == 0.61234 and done.folds_done == done.folds == 16 and done.seed == 2
    assert done.overrides == {"train.epochs": 3}
    assert not partial.finished and partial.folds_done == 5 and partial.method == "ststnet"
    assert damaged.problem == "no readable config" and damaged.method == "?"
    table = runs_table(list(runs.values()))
    assert "| 16/16 | 0.6123 | 0.6000 |" in table and "| 5/16 | - | - |" in table
    assert "train.epochs=3" in table and "(no readable config)" in table


def test_no_cache_is_an_empty_list(tmp_path):
    assert list_runs(tmp_path / "nothing") == []
