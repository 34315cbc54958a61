"""RunSpec and ExecutionOptions: checked where they are made, and carried to the fold unchanged."""
from __future__ import annotations

from dataclasses import replace

import pytest

import mercore.runner
from mercore.config import ConfigError
from mercore.core_settings import INERT_SETTINGS
from mercore.evaluation.identity import run_identity
from mercore.runner import prepare, run_config, run_key, run_seeds
from mercore.spec import ExecutionOptions, RunSpec

SUBJECTS = ["s0", "s1", "s2"]


@pytest.mark.parametrize(("kwargs", "option"), [({"workers": -1}, "--workers"), ({"workers": "many"}, "--workers"),
                                                 ({"executor": "slurm"}, "--executor"),
                                                 ({"experiment": ""}, "--experiment")])
def test_a_bad_execution_option_is_refused_by_name(kwargs, option):
    with pytest.raises(ConfigError, match=f"^{option}"):
        ExecutionOptions(**kwargs)


@pytest.mark.parametrize(("kwargs", "option"), [({"seeds": 0}, "--seeds 0"), ({"seeds": []}, "--seeds"),
                                                ({"seeds": [1, 1]}, "--seeds 1,1"), ({"seed": -1}, "seed -1"),
                                                ({"seed": "3"}, "seed '3'"), ({"subjects": "s0"}, "--subjects")])
def test_a_bad_spec_field_is_refused_by_name(kwargs, option):
    with pytest.raises(ConfigError, match=f"^{option}"):
        RunSpec("toy", **kwargs)


def test_a_spec_holds_typed_values():
    spec = RunSpec("toy", overrides={"train.lr": 0.01}, subjects=["s0"], data_root="corpus", seeds=[2, 5])
    assert spec.overrides == ("train.lr=0.01",) and spec.subjects == ("s0",) and spec.seeds == (2, 5)
    assert spec.data_root.name == "corpus" and ExecutionOptions(cache_dir="c").cache_dir.name == "c"


def test_the_seed_reaches_the_config_as_an_int_after_the_overrides(toy_registry):
    spec = RunSpec("toy", dataset="toy", overrides=["run.seed=1"])
    assert run_config(spec, toy_registry)["run"]["seed"] == 1
    seeded = run_config(replace(spec, seed=7), toy_registry)["run"]["seed"]
    assert seeded == 7 and type(seeded) is int


def test_the_run_folder_keeps_the_name_it_had_before_the_spec(toy_registry, tmp_path):
    """The names computed by the keyword-argument runner (seed as ``--set run.seed=3``): an identical
    run must find the folds an earlier version finished."""
    options = ExecutionOptions(cache_dir=tmp_path)
    spec = RunSpec("toy", dataset="toy", subjects=SUBJECTS, profile="quick")
    assert prepare(spec, options, registry=toy_registry).folder("runs").name == "toy-toy-502e33ad2b90"
    seeded = prepare(replace(spec, overrides=["train.epochs=2"], seed=3), options, registry=toy_registry)
    assert seeded.folder("runs").name == "toy-toy-bf4778b58ae5"
    assert seeded.overrides == ["--set train.epochs=2", "--set run.seed=3"]


def test_each_seed_runs_its_own_spec_with_an_int_seed(toy_registry, tmp_path, monkeypatch):
    seen: list[RunSpec] = []
    real = mercore.runner.run
    monkeypatch.setattr(mercore.runner, "run", lambda spec, *args, **kwargs: seen.append(spec) or real(spec, *args,
                                                                                                       **kwargs))
    spec = RunSpec("toy", dataset="toy", subjects=["s0", "s1"], profile="quick", overrides=["train.epochs=1"],
                   seeds=[4, 9])
    result = run_seeds(spec, ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False),
                       registry=toy_registry)
    assert [s.seed for s in seen] == [4, 9] and all(s.seeds is None for s in seen)
    assert [replace(s, seed=None, seeds=spec.seeds) for s in seen] == [replace(spec, method=seen[0].method)] * 2
    assert [r.config["run"]["seed"] for r in result.runs] == [4, 9] and result.seeds == [4, 9]


@pytest.mark.parametrize(("section", "key"), INERT_SETTINGS)
def test_an_inert_setting_changes_neither_the_run_folder_nor_a_fold_identity(section, key):
    config = {"run": {"seed": 0, "feature_workers": 0, "start_method": "auto"},
              "evaluation": {"bootstrap": {"resamples": 2000}, "interval": "percentile", "leakage_audit": True}}
    changed = {**config, section: {**config[section], key: "other"}}

    def identity(c):
        return run_identity(c, {}, [], "task", str)
    assert run_key({"config": changed}) == run_key({"config": config})
    assert identity(changed) == identity(config)
    seeded = {**config, "run": {**config["run"], "seed": 1}}
    assert run_key({"config": seeded}) != run_key({"config": config}) and identity(seeded) != identity(config)
