"""Typed config sections (mercore.settings): unknown, missing and mistyped keys are refused with a
message naming the key; the core trainers take their defaults from trainers.yaml only."""
from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Mapping

import pytest

from mercore import (Between, EpisodicTrainer, Method, PositiveInt, Probability, Settings, SupervisedTrainer,
                     TripletTrainer, runtime)
from mercore.config import ConfigError, resolve_config, trainer_defaults
from mercore.training.perturbation import PerturbationTraining


@dataclasses.dataclass(kw_only=True)
class Block(Settings):
    section = "model.block"

    kind: Literal["a", "b"]
    rate: Probability


@dataclasses.dataclass(kw_only=True)
class Net(Settings):
    section = "model"

    width: PositiveInt
    depths: tuple[PositiveInt, ...]
    gain: float
    ratio: float | None
    streams: Mapping[str, int]
    block: Block
    layers: Annotated[int, Between(1, 4)]
    callback: object = runtime()


GOOD = {"width": 8, "depths": [1, 2], "gain": 2, "ratio": None, "streams": {"flow": 3}, "block": {"kind": "a", "rate": 0.5},
        "layers": 2}


def test_a_complete_section_builds_with_types_converted():
    net = Net.from_config(GOOD, callback=print)
    assert net.depths == (1, 2) and isinstance(net.gain, float) and net.block == Block(kind="a", rate=0.5)
    assert net.callback is print and Net.keys() == ["width", "depths", "gain", "ratio", "streams", "block", "layers"]


@pytest.mark.parametrize("change, message", [
    ({"widht": 8}, r"unknown model option\(s\) \['widht'\]; valid: \[.*'width'"),
    ({"width": 0}, r"'model.width': 0 is not allowed; expected an integer >= 1"),
    ({"width": True}, r"'model.width': True is not allowed"),
    ({"width": 8.0}, r"'model.width': 8.0 is not allowed"),
    ({"depths": "1,2"}, r"'model.depths'.*expected a list of an integer >= 1"),
    ({"depths": [1, 0]}, r"'model.depths'"),
    ({"gain": "x"}, r"'model.gain': 'x' is not allowed; expected a finite number"),
    ({"ratio": "none"}, r"'model.ratio'.*expected a finite number or null"),
    ({"streams": [3]}, r"'model.streams'.*a mapping"),
    ({"block": {"kind": "c", "rate": 0.5}}, r"'model.block.kind': 'c' is not allowed; expected one of a, b"),
    ({"block": {"kind": "a", "rate": 1.5}}, r"'model.block.rate': 1.5 .*in \[0, 1\]"),
    ({"block": {"kind": "a"}}, r"config section 'model.block' lacks 'rate'"),
    ({"layers": 5}, r"'model.layers': 5 .*in \[1, 4\]"),
])
def test_bad_sections_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        Net.from_config({**GOOD, **change})


def test_a_missing_key_is_an_error_not_a_code_default():
    with pytest.raises(ConfigError, match=r"config section 'model' lacks 'gain'.*only source of defaults"):
        Net.from_config({k: v for k, v in GOOD.items() if k != "gain"})


def test_core_trainers_read_their_defaults_from_trainers_yaml_only():
    for cls, kind in ((SupervisedTrainer, "supervised"), (TripletTrainer, "triplet"), (EpisodicTrainer, "episodic")):
        config_fields = [f for f in dataclasses.fields(cls) if f.name in cls.keys()]
        assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in config_fields)
        assert set(cls.keys()) == set(trainer_defaults(kind)), kind
        cls.from_config({})  # the YAML alone is complete
    trainer = SupervisedTrainer.from_config({"lr": 3e-4, "perturbation": {"enabled": True, "every": 5}})
    assert trainer.lr == 3e-4 and trainer.epochs == trainer_defaults("supervised")["epochs"]
    assert isinstance(trainer.perturbation, PerturbationTraining) and trainer.perturbation.every == 5
    assert trainer.perturbation.hflip.p == trainer_defaults("perturbation")["hflip"]["p"]
    with pytest.raises(ConfigError, match=r"'train.perturbation.every': 0"):
        SupervisedTrainer.from_config({"perturbation": {"every": 0}})
    with pytest.raises(ConfigError, match=r"length \(3\) must be <= every \(2\)"):
        SupervisedTrainer.from_config({"perturbation": {"every": 2, "length": 3}})
    with pytest.raises(ConfigError, match=r"'triplet.mining': 'hard'"):
        TripletTrainer.from_config({"mining": "hard"})


class Sections(Method):
    name = "sections"

    def features(self, config):
        return {}

    def build_model(self, config, num_classes):
        raise NotImplementedError

    def default_config(self):
        return {"train": {"epochs": 3}, "stage2": {"outer": {"lr": 0.5}}}

    trainer_sections = {"train": "supervised", "stage2.outer": "triplet"}


def test_the_resolved_config_holds_every_trainer_value_and_checks_overrides():
    """``mer config`` and the run key show what the trainers use; a --set of a trainer default
    (not written in the method's YAML) is accepted and typed."""
    config = resolve_config(Sections(), sets=["train.momentum=0.5", "stage2.outer.margin=0.3"])
    assert config["train"]["epochs"] == 3 and config["train"]["momentum"] == 0.5
    assert config["train"]["perturbation"]["every"] == trainer_defaults("perturbation")["every"]
    assert config["stage2"]["outer"] == {**trainer_defaults("triplet"), "lr": 0.5, "margin": 0.3}
    with pytest.raises(ConfigError, match="unknown config key 'train.momentm'"):
        resolve_config(Sections(), sets=["train.momentm=0.5"])


@pytest.mark.parametrize("key, value", [("train.lr", ".inf"), ("train.lr", "1e309"), ("train.weight_decay", ".inf"),
                                        ("train.momentum", ".nan"), ("model.dropout", ".nan"),
                                        ("train.grad_clip", ".inf")])
def test_non_finite_numbers_are_refused_naming_the_key(key, value):
    """YAML reads .inf, .nan and 1e309 as numbers; no setting means them (a NaN dropout or an infinite
    learning rate gave silent all-NaN predictions)."""
    from mercore.config import ConfigError
    from mercore.runner import load_method, run_config
    from mercore.spec import RunSpec

    registry, method = load_method(None, "ststnet")
    with pytest.raises((ConfigError, ValueError), match=key.split(".")[-1]):
        config = run_config(RunSpec(method, profile="quick", overrides=[f"{key}={value}"]), registry)
        method.stages(config)
        method.build_model(config, 3)
