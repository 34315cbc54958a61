"""Model figures: FLOPs of a known layer, latency and training throughput leave the model as found."""
from __future__ import annotations

import torch
from torch import nn

from mercore.profiling import count_flops, count_parameters, median_latency_ms, training_samples_per_s


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.bn(self.fc(batch["x"].flatten(1)))


def test_parameters_and_flops_of_a_linear_layer():
    model = Head().eval()
    assert count_parameters(model) == 12 * 3 + 3 + 2 * 3
    assert count_flops(model, {"x": torch.randn(1, 12)}) == 2 * 12 * 3  # a multiply-add is 2 FLOPs


def test_latency_and_training_throughput_leave_the_model_unchanged():
    model = Head().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = {"x": torch.randn(1, 3, 4)}
    assert median_latency_ms(model, batch, runs=3, warmup=1) > 0
    assert training_samples_per_s(model, batch, batch_size=4, steps=2, warmup=1) > 0
    assert not model.training  # eval mode restored
    for key, value in model.state_dict().items():  # weights and BatchNorm statistics restored
        torch.testing.assert_close(value, before[key])


class Prototypes(nn.Module):
    """Logits from fixed centroids only: nothing to train with cross-entropy."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 4)  # trained elsewhere (by the method's own stages)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.zeros(batch["x"].shape[0], 3)


def test_training_throughput_is_none_without_a_gradient():
    model = Prototypes().eval()
    assert training_samples_per_s(model, {"x": torch.randn(1, 4)}, batch_size=2, steps=1, warmup=0) is None
    assert not model.training


def test_mer_profile_defaults_to_the_profile_of_mer_config_and_says_what_it_measures(toy_registry, monkeypatch):
    """`mer profile` once defaulted to the paper's setup, unlike `mer run` and `mer config`; it printed
    nothing during minutes of work and gave latencies without saying they depend on the machine's load."""
    import yaml
    from click.testing import CliRunner

    import mercore.profiling
    import mercore.runner
    from mercore.cli import cli

    monkeypatch.setattr(mercore.runner, "load_method", lambda _reg, name: (toy_registry, toy_registry.method(name)))
    monkeypatch.setattr(mercore.profiling, "example_batch", lambda method, config: {"x": torch.randn(1, 8)})
    config = CliRunner().invoke(cli, ["config", "--plugin", "toy"])
    assert config.exit_code == 0, config.output
    expected = yaml.safe_load(config.output)["meta"]["profile"]
    out = CliRunner().invoke(cli, ["profile", "--plugin", "toy", "--runs", "2"])
    assert out.exit_code == 0, out.output
    assert f"profile                {expected}" in out.stdout and expected == "quick"
    assert "measuring training speed" in out.stderr and "measuring single-sample latency" in out.stderr
    assert "load_average_1min" in out.stdout and "other work on it makes them slower" in out.stdout
    paper = CliRunner().invoke(cli, ["profile", "--plugin", "toy", "--runs", "2", "--profile", "paper"])
    assert "profile                paper" in paper.stdout
