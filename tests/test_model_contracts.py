"""Encoder and Fusion are contracts the core checks: on every model a method builds (before any
feature is computed, and again in each fold), and on the first output of each encoder and fusion."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mercore import Encoder, Fusion
from mercore.nn.base import ContractError, check_modules, watch_outputs
from mercore.plugins import PluginError
from mercore.runner import run
from mercore.spec import ExecutionOptions, RunSpec
from tests.conftest import ToyMethod


class Linear(Encoder):
    def __init__(self, width: int, declared: int | None = None) -> None:
        super().__init__()
        self.lin = nn.Linear(8, width)
        if declared is not None:
            self.out_features = declared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


class Sum(Fusion):
    def forward(self, feats):
        return sum(feats)


class Pair(Fusion):
    def forward(self, feats):
        return tuple(feats)  # not a tensor


class NoForward(Fusion):
    pass


class Net(nn.Module):
    def __init__(self, encoder: nn.Module, fusion: nn.Module) -> None:
        super().__init__()
        self.a, self.b, self.fuse = encoder, Linear(4, 4), fusion
        self.head = nn.Linear(4, 3)

    def forward(self, batch):
        z = self.fuse([self.a(batch["x"]), self.b(batch["x"])])
        return self.head(z if isinstance(z, torch.Tensor) else z[0])


def test_check_modules_refuses_an_encoder_without_its_width_and_a_fusion_without_forward():
    check_modules(Net(Linear(4, 4), Sum()), "method 'm'")
    with pytest.raises(ContractError, match=r"method 'm': .*Linear \(model.a\) must set out_features .* got None"):
        check_modules(Net(Linear(4), Sum()), "method 'm'")
    with pytest.raises(ContractError, match=r"out_features .* got 4.0"):
        check_modules(Net(Linear(4, 4.0), Sum()), "method 'm'")
    with pytest.raises(ContractError, match=r"NoForward \(model.fuse\) does not implement forward \(mercore.Fusion\)"):
        check_modules(Net(Linear(4, 4), NoForward()), "method 'm'")


def test_the_first_outputs_are_checked_then_the_checks_go():
    model = Net(Linear(4, 4), Sum())
    watch_outputs(model, "method 'm'")
    model({"x": torch.rand(2, 8)})
    assert not any(m._forward_hooks for m in model.modules())  # one check per module, then no cost
    wrong = Net(Linear(4, 5), Sum())
    watch_outputs(wrong, "method 'm'")
    with pytest.raises(ContractError, match=r"Linear \(model.a\) declares out_features 5 but returned shape \(2, 4\)"):
        wrong({"x": torch.rand(2, 8)})
    pair = Net(Linear(4, 4), Pair())
    watch_outputs(pair, "method 'm'")
    with pytest.raises(ContractError, match=r"Pair \(model.fuse\) returned tuple, not a tensor"):
        pair({"x": torch.rand(2, 8)})


class BrokenEncoderMethod(ToyMethod):
    def build_model(self, config, num_classes):
        return Net(Linear(4), Sum())


def test_a_method_whose_encoder_breaks_the_contract_stops_before_any_feature(toy_registry, tmp_path):
    with pytest.raises(PluginError, match=r"method 'toy': .*Linear \(model.a\) must set out_features"):
        run(RunSpec(BrokenEncoderMethod(), dataset="toy"),
            ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False), registry=toy_registry)
    assert not (tmp_path / "features").exists()


def test_mer_profile_checks_the_contract_before_measuring_anything():
    from mercore.profiling import profile_method

    heard: list[str] = []
    with pytest.raises(ContractError, match=r"method 'toy': .*Linear \(model.a\) must set out_features"):
        profile_method(RunSpec(BrokenEncoderMethod()), runs=1, announce=heard.append)
    assert not any("inputs" in line for line in heard)  # refused before any clip was read
