"""Config layering and strict keys."""
from __future__ import annotations

import pytest

from mercore.config import ConfigError, deep_merge, parse_set, resolve_config


def test_parse_set_types():
    assert parse_set(["a.b=0.01", "a.c=[1, 2]", "d=true", "e=hello"]) == {"a": {"b": 0.01, "c": [1, 2]}, "d": True, "e": "hello"}
    assert parse_set(["lr=1e-3", "b=-2E+4", "c=1.5e-5", "d=e5", "f=1e"]) == {"lr": 0.001, "b": -20000.0, "c": 1.5e-5,
                                                                          "d": "e5", "f": "1e"}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_set(["novalue"])


def test_values_are_never_evaluated():
    assert parse_set(["a=__import__('os').system('echo hi')"]) == {"a": "__import__('os').system('echo hi')"}



def test_layering_and_strictness(tmp_path, toy_registry):
    method = toy_registry.method("toy")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  lr: 0.2\n  epochs: 3\n")
    cfg = resolve_config(method, variant="b", profile="quick", config_file=cfg_file, sets=["train.epochs=4"])
    assert cfg["model"]["hidden"] == 8           # variant
    assert cfg["train"]["lr"] == 0.2              # file over default
    assert cfg["train"]["epochs"] == 4            # --set over file over profile
    assert cfg["run"]["seed"] == 0                # core default
    assert cfg["meta"] == {"method": "toy", "variant": "b", "profile": "quick", "inputs": "clips"}
    cfg_file.write_text("trian:\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'trian' \(in .*c.yaml\)"):
        resolve_config(method, config_file=cfg_file)
    with pytest.raises(ConfigError, match="unknown profile 'fast' of toy; choose one of: paper, quick"):
        resolve_config(method, profile="fast")


def test_deep_merge_keeps_base_untouched():
    base = {"a": {"b": 1}}
    out = deep_merge(base, {"a": {"b": 2}})
    assert base == {"a": {"b": 1}} and out == {"a": {"b": 2}}


def test_extractor_params_are_open_but_other_keys_stay_strict():
    base = {"features": {"flow": {"extractor": "flow_uvs", "params": {}}}}
    merged = deep_merge(base, parse_set(["features.flow.params.source_size=128"]), strict=True)
    assert merged["features"]["flow"]["params"] == {"source_size": 128}
    with pytest.raises(ConfigError, match=r"unknown config key 'features.flow.extractr'"):
        deep_merge(base, parse_set(["features.flow.extractr=x"]), strict=True)


class _Conditional:
    """A method whose YAML picks inputs per input kind and a value per dataset, at every layer."""

    name = "cond"
    variants = {"a": "", "b": ""}
    default_variant = "a"

    def default_config(self):
        return {"features": {"source": "clips", "size": 28}, "model": {"gamma": 0.5},
                "inputs": {"flow-release": {"features": {"source": "release"}}},
                "datasets": {"smic": {"model": {"gamma": 0.8}}},
                "variants": {"b": {"features": {"size": 14},
                                   "inputs": {"flow-release": {"features": {"size": 7}}}}}}

    def profiles(self):
        return {"quick": {"model": {"gamma": 0.1}, "datasets": {"smic": {"model": {"gamma": 0.2}}},
                          "inputs": {"clips": {"features": {"size": 64}}}}}


def test_input_kind_and_dataset_sections_apply_after_their_layer():
    method = _Conditional()
    assert resolve_config(method)["features"] == {"source": "clips", "size": 28}
    release = resolve_config(method, inputs="flow-release")
    assert release["features"]["source"] == "release" and release["meta"]["inputs"] == "flow-release"
    assert resolve_config(method, dataset="smic")["model"]["gamma"] == 0.8
    assert resolve_config(method, dataset="casme2")["model"]["gamma"] == 0.5
    assert resolve_config(method, variant="b", inputs="flow-release")["features"] == {"source": "release", "size": 7}
    assert resolve_config(method, variant="b")["features"]["size"] == 14
    quick = resolve_config(method, profile="quick", dataset="smic")
    assert quick["model"]["gamma"] == 0.2 and quick["features"]["size"] == 64     # the profile's sections win
    assert resolve_config(method, profile="quick", sets=["model.gamma=0.3"], dataset="smic")["model"]["gamma"] == 0.3
    assert "inputs" not in release and "datasets" not in release


def test_conditional_sections_are_strict():
    method = _Conditional()
    bad = method.profiles()
    bad["quick"]["inputs"] = {"flow-release": {"features": {"sorce": "x"}}}
    method.profiles = lambda: bad
    with pytest.raises(ConfigError, match=r"unknown config key 'features.sorce' \(profile quick, inputs flow-release\)"):
        resolve_config(method, profile="quick", inputs="flow-release")


def test_exponent_floats_are_numbers_as_python_writes_them(tmp_path):
    assert parse_set(["a=1e-3", "b=-2E+3", "c=1.5e-3", "d=1", "e=1e3x"]) == \
        {"a": 0.001, "b": -2000.0, "c": 0.0015, "d": 1, "e": "1e3x"}
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 5e-4\n")
    from mercore.config import load_yaml

    assert load_yaml(path) == {"train": {"lr": 0.0005}}


def test_overrides_keep_the_type_of_the_default(toy_registry):
    method = toy_registry.method("toy")
    cfg = resolve_config(method, sets=["train.lr=1", "train.epochs=3"])
    assert cfg["train"]["lr"] == 1.0 and isinstance(cfg["train"]["lr"], float)  # a float accepts an integer
    for bad, message in [("train.epochs=2.5", r"'train.epochs' \(from --set\): expected an integer .*got 2.5"),
                         ("train.epochs=abc", r"expected an integer \(like the default 30\), got 'abc'"),
                         ("train.lr=abc", r"'train.lr' \(from --set\): expected a finite number .*got 'abc'"),
                         ("data.normalize=3", r"'data.normalize' .*expected true or false"),
                         ("train=3", r"'train' \(from --set\) is a section")]:
        with pytest.raises(ConfigError, match=message):
            resolve_config(method, sets=[bad])


@pytest.mark.parametrize("key, value, allowed", [
    ("train.epochs", 0, "an integer >= 1"), ("train.epochs", -3, "an integer >= 1"),
    ("train.batch_size", 0, "an integer >= 1"), ("train.lr", 0.0, "a number > 0"),
    ("train.optimizer", "nosuch", "one of adam, adamw, sgd"),
    ("train.scheduler", {"name": "warp"}, "name is one of none, step, cosine"),
    ("run.seed", "hello", "an integer"), ("run.device", "gpu0", "auto, cpu, mps, cuda or cuda:N"),
    ("validation.subjects", 1.0, "a finite number >= 0 and < 1"), ("run.feature_workers", -1, "an integer >= 0"),
])
def test_validate_config_names_key_value_and_what_is_allowed(toy_registry, key, value, allowed):
    from mercore.core_settings import validate_config

    cfg = resolve_config(toy_registry.method("toy"))
    validate_config(cfg)
    section, name = key.split(".")
    cfg[section][name] = value
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value).startswith(f"config key {key!r}: {value!r} is not allowed; expected ")
    assert allowed in str(err.value)


def test_every_installed_method_profile_and_variant_is_valid():
    from mercore.core_settings import validate_config
    from mercore.plugins import load_registry

    registry = load_registry()
    for name in registry.list("methods"):
        method = registry.method(name)
        for variant in method.variants or [None]:
            for profile in ["paper", *method.profiles()]:
                validate_config(resolve_config(method, variant=variant, profile=profile))


class _Aligned(_Conditional):
    def default_config(self):
        return {**super().default_config(), "features": {"source": "clips", "size": 28, "align": "auto"}}


def test_auto_alignment_is_dlib_on_raw_clips_when_installed_else_none_with_a_notice(monkeypatch):
    import importlib

    landmarks = importlib.import_module("mercore.face.landmarks")  # the package exports a function of that name
    method = _Aligned()
    monkeypatch.setattr(landmarks, "dlib_installed", lambda: True)
    raw = resolve_config(method, dataset="casme2", aligned=False)
    assert raw["features"]["align"] == "dlib" and "notices" not in raw["meta"]
    for kwargs in ({"dataset": "synthetic", "aligned": True}, {"inputs": "flow-release", "aligned": False}, {}):
        config = resolve_config(method, **kwargs)  # aligned corpus, cropped release, unknown corpus
        assert config["features"]["align"] == "none" and "notices" not in config["meta"], kwargs
    assert resolve_config(method, aligned=False, sets=["features.align=none"])["features"]["align"] == "none"
    monkeypatch.setattr(landmarks, "dlib_installed", lambda: False)
    raw = resolve_config(method, profile="quick", dataset="casme2", aligned=False)
    assert raw["features"]["align"] == "none"
    (notice,) = raw["meta"]["notices"]
    assert "\n" not in notice and "dlib is not installed" in notice and "pip install" in notice
    with pytest.raises(ConfigError, match="features.align must be one of auto, dlib, none, got 'mtcnn'"):
        resolve_config(method, sets=["features.align=mtcnn"])


def test_the_paper_profile_refuses_unaligned_raw_frames_unless_asked_for(monkeypatch):
    """Every paper crops faces; without dlib the paper profile stops with one line saying how to get
    the crop or how to opt in to whole frames, instead of a notice beside a run on whole frames."""
    import importlib

    monkeypatch.setattr(importlib.import_module("mercore.face.landmarks"), "dlib_installed", lambda: False)
    method = _Aligned()
    for profile in (None, "paper"):
        with pytest.raises(ConfigError) as refused:
            resolve_config(method, profile=profile, dataset="casme2", aligned=False)
        message = str(refused.value)
        assert "\n" not in message and "paper profile crops faces" in message
        assert "pip install 'mercore[dlib]'" in message and "--set features.align=none" in message
    whole = resolve_config(method, dataset="casme2", aligned=False, sets=["features.align=none"])
    assert whole["features"]["align"] == "none" and "notices" not in whole["meta"]
    for kwargs in ({"dataset": "synthetic", "aligned": True}, {"inputs": "flow-release", "aligned": False}):
        assert resolve_config(method, **kwargs)["features"]["align"] == "none"  # nothing to crop: no refusal


def test_dataset_options_are_an_open_section(toy_registry):
    method = toy_registry.method("toy")
    config = resolve_config(method, sets=["data.options.apex=spotting"])
    assert config["data"]["options"] == {"apex": "spotting"}
    with pytest.raises(ConfigError, match="unknown config key 'data.optoins'"):
        resolve_config(method, sets=["data.optoins.apex=spotting"])
