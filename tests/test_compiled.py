"""run.compile: fold after fold compiled in one process, and an error rather than a silent eager fallback."""
from __future__ import annotations

import pytest
import torch
import torch._dynamo
import torch._dynamo.config as dynamo_config
from torch import nn

from mercore.training import compiled
from mercore.training.compiled import compile_model


class RankSum(nn.Module):
    """A forward torch must compile anew for each input rank: a new cache entry per call below."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 2).sum()


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """torch's defaults before each test and back after it (the config is the process's)."""
    with dynamo_config.patch(recompile_limit=8, fail_on_recompile_limit_hit=False):
        torch._dynamo.reset()
        yield
        torch._dynamo.reset()


def _graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_plain_compile_falls_back_silently_after_eight_variants():
    """Why compile_model exists: with torch's defaults the ninth variant runs eagerly, no error."""
    model, before = torch.compile(RankSum(), backend="eager"), _graphs()
    for rank in range(1, 13):
        assert model(torch.ones([1] * rank)).item() == 2.0
    assert _graphs() - before == dynamo_config.recompile_limit == 8


def test_models_of_every_fold_stay_compiled():
    """Twelve variants over three fold models, each a new instance as fit_model builds: all compiled."""
    before = _graphs()
    for fold in range(3):
        model = compile_model(RankSum(), backend="eager")
        for rank in range(1 + 4 * fold, 5 + 4 * fold):
            assert model(torch.ones([2] * rank)).item() == 2.0 * 2**rank
    assert _graphs() - before == 12
    assert dynamo_config.recompile_limit == compiled.COMPILED_VARIANTS


def test_more_variants_than_the_bound_is_an_error(monkeypatch):
    monkeypatch.setattr(compiled, "COMPILED_VARIANTS", 3)
    dynamo_config.recompile_limit = 3
    model = compile_model(RankSum(), backend="eager")
    for rank in range(1, 4):
        model(torch.ones([1] * rank))
    with pytest.raises(Exception, match="recompile"):
        model(torch.ones([1] * 4))


def test_the_limit_is_never_lowered():
    dynamo_config.recompile_limit = 500
    compile_model(RankSum(), backend="eager")
    assert dynamo_config.recompile_limit == 500


def test_a_missing_cpp_compiler_is_a_config_error_before_any_work(monkeypatch):
    """Inductor on a CPU needs a C++ compiler: without one the run stops at once, naming the option."""
    from mer_ststnet.plugin import STSTNet

    from mercore.config import ConfigError, resolve_config
    from mercore.runner import check_run_options

    from torch._inductor import cpp_builder

    def no_compiler() -> str:
        raise RuntimeError("no g++ found")

    on = resolve_config(STSTNet(), sets=["run.compile=true", "run.device=cpu"])
    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", lambda: "g++")
    check_run_options(on)  # a compiler found: nothing to say
    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    with pytest.raises(ConfigError, match=r"run.compile=true: torch.compile on a CPU needs a C\+\+ compiler"):
        check_run_options(on)
    check_run_options(resolve_config(STSTNet(), sets=["run.compile=false", "run.device=cpu"]))  # off: no check
