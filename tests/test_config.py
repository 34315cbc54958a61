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
    raw = resolve_config(method, dataset="casme2", aligned=False)
    assert raw["features"]["align"] == "none"
    (notice,) = raw["meta"]["notices"]
    assert "\n" not in notice and "dlib is not installed" in notice and "pip install" in notice
    with pytest.raises(ConfigError, match="features.align must be one of auto, dlib, none, got 'mtcnn'"):
        resolve_config(method, sets=["features.align=mtcnn"])


def test_dataset_options_are_an_open_section(toy_registry):
    method = toy_registry.method("toy")
    config = resolve_config(method, sets=["data.options.apex=spotting"])
    assert config["data"]["options"] == {"apex": "spotting"}
    with pytest.raises(ConfigError, match="unknown config key 'data.optoins'"):
        resolve_config(method, sets=["data.optoins.apex=spotting"])
