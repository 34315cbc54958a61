"""The plugin contract kit: it passes a well-behaved method and fails broken ones."""
from __future__ import annotations

import time
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from mercore import FeatureRequest, Method, SupervisedTrainer, hookimpl
from mercore.testing import MethodContract, default_tiny_overrides, method_contract_tests
from tests.conftest import StreamNet

torch.set_num_threads(1)


class KitNet(Method):
    """A linear model on the 16 px gray frame difference: cheap, but real features."""

    name = "kitnet"
    variants = {"a": "plain", "b": "wider"}
    default_variant = "a"

    def default_config(self):
        return {"features": {"size": 16}, "model": {"hidden": 8},
                "train": {"optimizer": "adam", "lr": 0.01, "epochs": 20, "batch_size": 4},
                "variants": {"b": {"model": {"hidden": 16}}}}

    def profiles(self):
        return {"quick": {"train": {"epochs": 5}}}

    def features(self, config):
        return {"diff": FeatureRequest("frame_diff", {"size": config["features"]["size"], "gray": True})}

    def build_model(self, config, num_classes):
        size = config["features"]["size"]
        return StreamNet(nn.Sequential(nn.Flatten(), nn.Linear(size * size, config["model"]["hidden"]), nn.ReLU(),
                                       nn.Linear(config["model"]["hidden"], num_classes)), "diff")

    def stages(self, config):
        return [SupervisedTrainer.from_config(config["train"])]


class WrongShape(KitNet):
    name = "wrongshape"

    def build_model(self, config, num_classes):
        return super().build_model(config, num_classes + 1)


class Unseeded(KitNet):
    """Initialises its head from the wall clock: runs with one seed still differ."""

    name = "unseeded"

    def build_model(self, config, num_classes):
        model = super().build_model(config, num_classes)
        g = torch.Generator().manual_seed(time.perf_counter_ns())
        with torch.no_grad():
            model.net[-1].bias.copy_(torch.randn(num_classes, generator=g) * 5)
        return model


def plugin_of(*methods: type[Method]) -> types.ModuleType:
    module = types.ModuleType("kit_plugin")

    @hookimpl
    def mer_register_methods(register):
        for m in methods:
            register(m)

    module.mer_register_methods = mer_register_methods
    module.tiny_overrides = {"train.epochs": 2}
    return module


class TestKitNetContract(MethodContract):
    """The kit as a plugin uses it, collected by pytest."""

    plugin = plugin_of(KitNet)
    method = "kitnet"


def test_one_line_form_builds_a_collectable_class():
    tests = method_contract_tests(plugin_of(KitNet), "kitnet", variant="b")
    cls = tests["TestMethodContract"]
    assert issubclass(cls, MethodContract) and cls.method == "kitnet" and cls.variant == "b"
    assert cls.overrides(KitNet()) == {"train.epochs": 2, "run.device": "cpu"}  # from the plugin module
    with pytest.raises(TypeError, match="unknown contract attributes: epochs"):
        method_contract_tests("x", "y", epochs=1)


def test_default_tiny_overrides_set_every_epochs_key_to_one():
    config = {"train": {"epochs": 30, "lr": 0.1}, "pretrain": {"epochs": 5, "flag": True}, "x": {"epochs": True}}
    assert default_tiny_overrides(config) == {"train.epochs": 1, "pretrain.epochs": 1}


def _ensure(tmp_path_factory) -> Path:
    """The session's shared contract corpus (what the kit's fixture returns)."""
    from mercore.data.dataset import LoadOptions
    from mercore.plugins import load_registry
    from mercore.testing import CORPUS_OPTIONS

    cache = tmp_path_factory.getbasetemp() / "mer-contract-cache"
    load_registry(only=[]).dataset("synthetic").ensure(LoadOptions(cache_dir=cache, extra=dict(CORPUS_OPTIONS)))
    return cache


def contract(method_cls: type[Method]) -> MethodContract:
    cls = type("C", (MethodContract,), {"plugin": plugin_of(method_cls), "method": method_cls.name})
    return cls()


def test_kit_catches_wrong_logit_shape(tmp_path_factory):
    with pytest.raises(AssertionError):
        contract(WrongShape).test_forward_on_real_features(_ensure(tmp_path_factory))


def test_kit_catches_nondeterminism(tmp_path_factory):
    c = contract(Unseeded)
    cache = _ensure(tmp_path_factory)
    runs = (c.tiny_run(cache), c.tiny_run(cache))
    with pytest.raises(AssertionError):
        c.test_same_seed_gives_identical_predictions_on_cpu(runs)


def test_kit_catches_missing_registration():
    c = contract(KitNet)
    type(c).method = "nosuchnet"
    with pytest.raises(Exception, match="nosuchnet"):
        c.test_registers_through_hooks()


def test_kit_catches_config_that_is_not_plain_yaml():
    class PathConfig(KitNet):
        name = "pathconfig"

        def default_config(self):
            return {**super().default_config(), "data": {"root": Path("/tmp")}}

    with pytest.raises(Exception):
        contract(PathConfig).test_config_round_trips_and_every_variant_and_profile_resolves()


KIT_DOC = """# KitNet

## Deviations from the paper

| Key | Paper | Ours | Why |
|---|---|---|---|
| `model.hidden` | 16 (Table 1) | `8` | smaller on purpose |
| weight init (code) | normal | PyTorch's | stable |
"""


def test_paper_config_tests_fail_on_drift_and_on_an_undocumented_deviation(tmp_path, monkeypatch):
    from mercore.testing import Within, paper_config_tests

    doc = tmp_path / "kitnet.md"
    doc.write_text(KIT_DOC)
    paper = [("train.lr", 0.01, "Sec. 1"), ("train.epochs", Within(10, 30), "Sec. 2"),
             ("model.hidden", 16, "Table 1", {"variant": "b"})]
    deviation = ("model.hidden", "16 (Table 1)", 8, "smaller on purpose")
    tests = paper_config_tests(KitNet(), paper, [deviation], doc=doc)
    for key, value, source, where in [(*row[:3], row[3] if len(row) == 4 else {}) for row in paper]:
        tests["test_paper_setting"](key, value, source, where, monkeypatch)
    tests["test_documented_deviation"](*deviation, {}, monkeypatch)
    tests["test_paper_and_deviation_rows_do_not_overlap"]()
    tests["test_every_doc_deviation_row_is_a_pinned_deviation"]()
    with pytest.raises(AssertionError, match=r"train.lr = 0.01 in the paper profile, but the paper says 0.001 \(Sec. 1\)"):
        tests["test_paper_setting"]("train.lr", 0.001, "Sec. 1", {}, monkeypatch)
    with pytest.raises(AssertionError, match="Within"):
        tests["test_paper_setting"]("train.epochs", Within(30, 40), "Sec. 2", {}, monkeypatch)
    with pytest.raises(KeyError, match="no key 'train.nosuch'"):
        tests["test_paper_setting"]("train.nosuch", 0.9, "Sec. 1", {}, monkeypatch)
    with pytest.raises(AssertionError, match=r"model.hidden = 8, the documented deviation says 12"):
        tests["test_documented_deviation"]("model.hidden", "16", 12, "why", {}, monkeypatch)
    twice = paper_config_tests(KitNet(), paper, [("train.lr", "0.1", 0.01, "listed twice")])
    with pytest.raises(AssertionError, match="listed twice"):
        twice["test_paper_and_deviation_rows_do_not_overlap"]()
    assert "test_documented_deviation" not in paper_config_tests(KitNet(), paper, [])
    with pytest.raises(ValueError, match="a deviation is"):
        paper_config_tests(KitNet(), paper, [("model.hidden", 8, "the old three-item form")])


def test_a_deviation_needs_its_own_true_row_in_the_docs_table(tmp_path, monkeypatch):
    """Naming the key somewhere in the doc is not enough: the table must have a row for it, with
    our value in its Ours cell; and every config row of the table must be a pinned deviation."""
    from mercore.testing import deviations_table, paper_config_tests

    doc = tmp_path / "kitnet.md"
    batch = ("train.batch_size", "32 (Sec. 3)", 4, "a tiny corpus")
    doc.write_text(KIT_DOC + "\nThe batch size `train.batch_size` is 4 because ...\n")
    tests = paper_config_tests(KitNet(), [], [batch], doc=doc)
    with pytest.raises(AssertionError, match="deviation train.batch_size .* has no row of its own"):
        tests["test_documented_deviation"](*batch, {}, monkeypatch)
    with pytest.raises(AssertionError, match=r"no deviation row of the test pins: \['`model.hidden`'\]"):
        tests["test_every_doc_deviation_row_is_a_pinned_deviation"]()
    doc.write_text(KIT_DOC + "| `train.batch_size` | 32 (Sec. 3) | 5 | a tiny corpus |\n")
    with pytest.raises(AssertionError, match=r"ours \(4\) in its Ours cell"):
        paper_config_tests(KitNet(), [], [batch], doc=doc)["test_documented_deviation"](*batch, {}, monkeypatch)
    doc.write_text(KIT_DOC + "| `train.batch_size` | 32 (Sec. 3) | 4 | a tiny corpus |\n")
    paper_config_tests(KitNet(), [], [batch], doc=doc)["test_documented_deviation"](*batch, {}, monkeypatch)
    rows = deviations_table(doc.read_text())
    assert [r["name"] for r in rows] == ["model.hidden", "", "train.batch_size"]
    assert rows[0] == {"key": "`model.hidden`", "paper": "16 (Table 1)", "ours": "`8`", "why": "smaller on purpose",
                       "name": "model.hidden"}


def test_every_key_of_the_paper_profile_must_be_compared_or_open(monkeypatch):
    from mercore.testing import paper_config_tests

    paper = [("train", {"optimizer": "adam", "lr": 0.01, "epochs": 20, "batch_size": 4}, "Sec. 4"),
             ("features.size", 16, "Sec. 3")]
    deviations = [("model.hidden", "16", 8, "smaller")]
    complete = [("data", "the paper says nothing of normalisation"), ("validation.subjects", "no split named")]
    paper_config_tests(KitNet(), paper, deviations, open_choices=complete)["test_every_key_is_compared_with_the_paper"](
        monkeypatch)
    missing = paper_config_tests(KitNet(), paper[1:], deviations, open_choices=complete)
    with pytest.raises(AssertionError, match=r"neither compared with the paper nor named an open choice: "
                                             r"\['train.optimizer', 'train.lr', 'train.weight_decay', "):
        missing["test_every_key_is_compared_with_the_paper"](monkeypatch)
    stale = paper_config_tests(KitNet(), paper, deviations, open_choices=[*complete, ("model.depth", "gone")])
    with pytest.raises(AssertionError, match=r"not keys of the config: \['model.depth'\]"):
        stale["test_every_key_is_compared_with_the_paper"](monkeypatch)
    twice = paper_config_tests(KitNet(), paper, deviations, open_choices=[*complete, ("train.lr", "open?")])
    with pytest.raises(AssertionError, match=r"already compare: \['train.lr'\]"):
        twice["test_every_key_is_compared_with_the_paper"](monkeypatch)
