"""Perturbation training (PT): schedule, each op on hand-made tensors, switches, trainer wiring."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from mercore import FoldData, StageContext, SupervisedTrainer, TensorSet
from mercore.training.perturbation import PerturbationTraining

torch.set_num_threads(1)

ALL_OFF = {op: {"enabled": False} for op in ("color_jitter", "gaussian_noise", "hflip", "random_mask")}


def pt(**cfg) -> PerturbationTraining:
    """PT with every op off unless ``cfg`` turns it on."""
    merged = {**ALL_OFF, **cfg}
    return PerturbationTraining.from_config({"enabled": True, "every": 20, **merged})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- schedule --------------------------------------------------------------------------------------

def test_schedule_fires_on_exactly_the_right_epochs():
    every20 = PerturbationTraining.from_config({"enabled": True, "every": 20})
    assert [e for e in range(100) if every20.active(e)] == [20, 40, 60, 80]
    three = PerturbationTraining.from_config({"every": 5, "length": 2})
    assert [e for e in range(22) if three.active(e)] == [5, 6, 10, 11, 15, 16, 20, 21]
    assert not any(PerturbationTraining.from_config({"every": 30}).active(e) for e in range(30))


def test_bad_config_is_an_error():
    for bad in ({"every": 0}, {"every": 4, "length": 5}, {"length": 0}, {"colour_jitter": {}},
                {"hflip": {"prob": 0.5}}, {"hflip": {"p": 1.5}}, {"random_mask": {"area": 2.0}},
                {"gaussian_noise": {"streams": "flow"}}):
        with pytest.raises(ValueError):
            PerturbationTraining.from_config(bad)


# --- the ops ---------------------------------------------------------------------------------------

def test_hflip_mirrors_all_streams_and_negates_u():
    ramp = torch.arange(6, dtype=torch.float32).view(1, 1, 1, 6).expand(4, 3, 5, 6).clone()
    ramp = ramp + 10 * torch.arange(4.0).view(4, 1, 1, 1)  # sample id in the values
    batch = {"apex": ramp.clone(), "flow": ramp.clone() + 1}
    out = pt(hflip={"p": 0.5})(batch, gen(3))
    flipped = out["apex"][:, 0, 0, 0] > out["apex"][:, 0, 0, -1]
    assert 0 < flipped.sum() < 4  # some of each with this seed
    torch.testing.assert_close(out["apex"][flipped], batch["apex"][flipped].flip(-1))
    torch.testing.assert_close(out["apex"][~flipped], batch["apex"][~flipped])
    # the flow stream is flipped on the same samples; its u (channel 0) is negated, v and strain not
    expect = batch["flow"].clone()
    expect[flipped] = expect[flipped].flip(-1)
    expect[flipped, 0] = -expect[flipped, 0]
    torch.testing.assert_close(out["flow"], expect)
    always = pt(hflip={"p": 1.0})(batch, gen(0))
    torch.testing.assert_close(always["flow"][:, 1:], batch["flow"][:, 1:].flip(-1))
    torch.testing.assert_close(always["flow"][:, 0], -batch["flow"][:, 0].flip(-1))


def test_mask_zeroes_the_stated_fraction_at_the_same_place_in_every_stream():
    batch = {"apex": torch.ones(6, 3, 20, 20), "flow": torch.full((6, 2, 20, 20), 2.0)}
    out = pt(random_mask={"area": 0.25, "boxes": 1})(batch, gen(1))
    zero_apex = out["apex"] == 0  # (6, 3, 20, 20)
    assert torch.equal(zero_apex[:, :1].expand(-1, 2, -1, -1), out["flow"] == 0)  # same box in both streams
    assert torch.equal(zero_apex.all(1), zero_apex.any(1))  # every channel masked alike
    fraction = zero_apex[:, 0].float().mean(dim=(1, 2))
    torch.testing.assert_close(fraction, torch.full((6,), 0.25))  # 10 x 10 of 20 x 20, exactly
    boxes = pt(random_mask={"area": 0.16, "boxes": 4})(batch, gen(2))["apex"][:, 0] == 0
    frac4 = boxes.float().mean(dim=(1, 2))
    assert (frac4 <= 0.16 + 1e-6).all() and (frac4 >= 0.04).all()  # 4 boxes of 4 x 4, overlap allowed
    assert (out["apex"][~zero_apex] == 1).all()  # nothing else touched


def test_noise_has_the_stated_std_and_zero_mean():
    batch = {"apex": torch.full((4, 3, 64, 64), 0.5), "flow": torch.zeros(4, 2, 64, 64)}
    out = pt(gaussian_noise={"sigma": 0.1})(batch, gen(0))
    for s in ("apex", "flow"):
        d = out[s] - batch[s]
        assert abs(d.std().item() - 0.1) < 0.005 and abs(d.mean().item()) < 0.005
    assert not torch.allclose(out["apex"][:, :2] - 0.5, out["flow"])  # independent draws per stream
    img_only = pt(gaussian_noise={"sigma": 0.1, "streams": "image"})(batch, gen(0))
    assert torch.equal(img_only["flow"], batch["flow"]) and not torch.equal(img_only["apex"], batch["apex"])


def test_color_jitter_changes_only_image_streams():
    g = gen(5)
    batch = {"apex": torch.rand(4, 3, 8, 8, generator=g) * 0.5 + 0.25, "flow": torch.randn(4, 3, 8, 8, generator=g)}
    out = pt(color_jitter={"brightness": 0.4, "contrast": 0.4, "saturation": 0.4})(batch, gen(0))
    assert torch.equal(out["flow"], batch["flow"])
    assert not torch.allclose(out["apex"], batch["apex"])
    assert out["apex"].min() >= 0 and out["apex"].max() <= 1


def test_color_jitter_brightness_is_a_per_sample_scale():
    x = torch.full((8, 3, 4, 4), 0.5)
    out = pt(color_jitter={"brightness": 0.3, "contrast": 0.0, "saturation": 0.0})({"apex": x}, gen(1))["apex"]
    factors = out[:, 0, 0, 0] / 0.5
    assert torch.allclose(out, factors.view(-1, 1, 1, 1) * x)  # uniform scale per sample
    assert (factors >= 0.7).all() and (factors <= 1.3).all() and factors.std() > 0.05
    grey = torch.rand(2, 3, 4, 4)
    grey[:, 1:] = grey[:, :1]  # r = g = b: saturation has nothing to change
    sat = pt(color_jitter={"brightness": 0.0, "contrast": 0.0, "saturation": 0.9})({"apex": grey}, gen(0))["apex"]
    torch.testing.assert_close(sat, grey)


def test_switches_turn_ops_off_and_draws_repeat():
    g = gen(7)
    batch = {"apex": torch.rand(4, 3, 16, 16, generator=g), "flow": torch.randn(4, 2, 16, 16, generator=g),
             "other": torch.randn(4, 1, 16, 16, generator=g)}
    none = pt()(batch, gen(0))
    for k in batch:
        assert torch.equal(none[k], batch[k])
    full = PerturbationTraining.from_config({"enabled": True})
    a, b = full(batch, gen(9)), full(batch, gen(9))
    for k in batch:
        assert torch.equal(a[k], b[k])  # deterministic given the generator
    assert torch.equal(a["other"], batch["other"])  # streams of neither kind pass unchanged
    assert not torch.equal(a["apex"], batch["apex"]) and not torch.equal(a["flow"], batch["flow"])
    # switching an op on does not change the other ops' draws: jitter never touches flow
    flip_only = pt(hflip={"p": 0.5})(batch, gen(9))
    flip_jitter = pt(hflip={"p": 0.5}, color_jitter={})(batch, gen(9))
    assert torch.equal(flip_only["flow"], flip_jitter["flow"])
    assert not torch.equal(flip_only["apex"], flip_jitter["apex"])
    assert not torch.equal(flip_only["flow"], batch["flow"])
    with pytest.raises(ValueError):
        pt(hflip={})({"diff": torch.zeros(1, 3, 4, 4)}, gen(0))  # none of the configured streams


# --- the trainer ---------------------------------------------------------------------------------------

class Recorder(nn.Module):
    """A linear model that remembers the batches it saw in training."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, 2)
        self.seen: list[torch.Tensor] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.training:
            self.seen.append(batch["apex"].detach().clone())
        return self.fc(batch["apex"].flatten(1))


def test_supervised_trainer_logs_perturbation_phase_on_the_right_epochs(tmp_path: Path):
    g = gen(0)
    apex = torch.rand(6, 3, 4, 4, generator=g)
    data = FoldData(train=TensorSet({"apex": apex}, torch.arange(6) % 2, [None] * 6),  # type: ignore[list-item]
                    val=None, test=TensorSet({"apex": apex[:2]}, torch.arange(2), [None] * 2),  # type: ignore[list-item]
                    test_groups=("s1",))
    logged: list[tuple[str, float, int]] = []
    ctx = StageContext(device=torch.device("cpu"), seed=0, num_classes=2, class_names=("a", "b"), fold="s1",
                       work_dir=tmp_path, progress=False, log_metric=lambda k, v, s: logged.append((k, v, s)))
    cfg = {"epochs": 7, "batch_size": 6, "lr": 1e-3,
           "perturbation": {"enabled": True, "every": 3, "length": 1, "image_streams": ["apex"], "flow_streams": [],
                            **{**ALL_OFF, "gaussian_noise": {"sigma": 0.5}}}}
    model = Recorder()
    SupervisedTrainer.from_config(cfg).fit(model, data, ctx)
    phase = {s: v for k, v, s in logged if k == "train/perturbation_phase"}
    assert phase == {0: 0.0, 1: 0.0, 2: 0.0, 3: 1.0, 4: 0.0, 5: 0.0, 6: 1.0}
    # the batches of epochs 3 and 6 were perturbed (noise), the others are the clean data
    clean = [e for e in range(7) if torch.allclose(model.seen[e].sort(0).values, apex.sort(0).values)]
    assert clean == [0, 1, 2, 4, 5]
    off = Recorder()
    logged.clear()
    SupervisedTrainer.from_config({**cfg, "perturbation": {"enabled": False, "every": 3}}).fit(off, data, ctx)
    assert not any(k == "train/perturbation_phase" for k, _, _ in logged)
