"""The core sections are typed once (mercore/core_settings.py), with core.yaml their only defaults,
and whether a key is part of a run's identity is marked on its field."""
from __future__ import annotations

import dataclasses

import pytest

from mercore.config import ConfigError, core_defaults, resolve_config
from mercore.core_settings import INERT_SETTINGS, CoreSettings, validate_config
from mercore.evaluation.identity import prediction_settings
from mercore.settings import Settings


def _sections(cls: type[Settings]) -> dict[str, type[Settings]]:
    hints = cls.hints()
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def test_the_typed_sections_hold_exactly_the_keys_of_core_yaml_and_no_default_of_their_own():
    defaults = core_defaults()
    assert set(_sections(CoreSettings)) == set(defaults)
    for name, section in _sections(CoreSettings).items():
        assert set(section.keys()) == set(defaults[name]), name
        assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   for f in dataclasses.fields(section)), f"{name}: a default written in code"  # type: ignore[arg-type]
    core = CoreSettings.of(defaults)
    assert core.run.seed == defaults["run"]["seed"] and core.evaluation.bootstrap.resamples == 2000


def test_the_inert_settings_are_those_marked_on_their_fields():
    assert set(INERT_SETTINGS) == {("run", "feature_workers"), ("run", "start_method"),
                                   ("evaluation", "interval"), ("evaluation", "bootstrap")}
    config = core_defaults()
    plain = prediction_settings(config)
    assert "feature_workers" not in plain["run"] and "bootstrap" not in plain["evaluation"]
    assert plain["run"]["seed"] == 0 and plain["evaluation"]["batch_size"] == config["evaluation"]["batch_size"]


def test_a_method_yaml_that_adds_a_key_to_a_core_section_is_refused_by_name(toy_registry):
    method = toy_registry.method("toy")
    config = resolve_config(method)
    validate_config(config)
    config["data"]["normalise"] = True  # a method's defaults may add keys; the core's sections may not
    with pytest.raises(ConfigError, match=r"unknown data option\(s\) \['normalise'\]; valid: \['normalize', 'options'\]"):
        validate_config(config)


def test_a_missing_core_section_is_an_error_naming_it(toy_registry):
    config = resolve_config(toy_registry.method("toy"))
    del config["validation"]
    with pytest.raises(ConfigError, match=r"config section 'validation' lacks 'subjects'"):
        validate_config(config)


def test_typed_values_are_what_the_config_holds(toy_registry):
    config = resolve_config(toy_registry.method("toy"), sets=["run.seed=7", "run.ray_cpus=2", "validation.subjects=0.25"])
    core = validate_config(config)
    assert core.run.seed == 7 and core.run.ray_cpus == 2.0 and isinstance(core.run.ray_cpus, float)
    assert core.validation.subjects == 0.25 and config["run"]["ray_cpus"] == 2  # the config itself is not changed
