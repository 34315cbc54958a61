"""The one training loop: what it logs, when it stops, audits and clips, and that every trainer
(supervised, triplet, episodic, MoExt pre-training) takes its gradient steps through it."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from mercore import FoldData, Optimisation, Sample, StageContext, Step, TensorSet, train_epochs
from mercore.metrics import scores
from mercore.training import loop
from mercore.training.episodic import EpisodicTrainer, PrototypeClassifier
from mercore.training.supervised import SupervisedTrainer
from mercore.training.triplet import TripletTrainer


def ctx_for(tmp_path: Path, log: list, num_classes: int = 3, audit=None) -> StageContext:
    return StageContext(device=torch.device("cpu"), seed=0, num_classes=num_classes,
                        class_names=tuple("abc"[:num_classes]), fold="f", work_dir=tmp_path, progress=False,
                        log_metric=lambda k, v, s: log.append((k, v, s)), audit=audit)


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.prototypes = PrototypeClassifier(3, [3])

    def embed(self, batch):
        return (self.lin(batch["x"]),)

    def forward(self, batch):
        return self.lin(batch["x"])


def fold(n: int = 24) -> FoldData:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    x = torch.randn(n, 4, generator=g) + labels[:, None].float()
    samples = [Sample("toy", f"s{i % 4}", f"c{i}") for i in range(n)]
    train = TensorSet({"x": x}, labels, samples)
    return FoldData(train=train, val=None, test=train.subset([0, 1]), test_groups=("toy/s9",))


def test_epoch_means_are_weighted_by_batch_size_and_metrics_by_their_counts(tmp_path):
    model = nn.Linear(1, 1)
    losses = iter([1.0, 4.0])
    log: list = []

    def step(batch: int) -> Step:
        value = next(losses)
        return Step(model.weight.sum() * 0 + value, size=batch, metrics={"hits": (float(batch), 4.0)})

    train_epochs(model, model.parameters(), ctx_for(tmp_path, log), stage="s", epochs=1,
                 optimisation=Optimisation("sgd", 0.1), batches=lambda epoch: [1, 3], step=step)
    logged = {k: v for k, v, _ in log}
    assert logged["s/loss"] == pytest.approx((1.0 * 1 + 4.0 * 3) / 4)
    assert logged["s/hits"] == pytest.approx(4 / 8)


def test_after_epoch_stops_training_and_the_audit_runs_only_when_asked(tmp_path):
    model = nn.Linear(1, 1)
    seen: list[int] = []
    audited: list[int] = []

    def run(audit: bool) -> None:
        seen.clear()
        train_epochs(model, model.parameters(), ctx_for(tmp_path, [], audit=lambda m, e: audited.append(e)),
                     stage="s", epochs=10, optimisation=Optimisation("sgd", 0.1),
                     batches=lambda epoch: [epoch], step=lambda b: Step((model.weight ** 2).sum()),
                     after_epoch=lambda epoch, means: seen.append(epoch) or epoch == 2, audit=audit)

    run(audit=False)
    assert seen == [0, 1, 2] and audited == []
    run(audit=True)
    assert audited == [0, 1, 2]


def test_gradients_are_clipped_to_the_configured_norm(tmp_path):
    model = nn.Linear(8, 1)
    norms: list[float] = []
    real_step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        norms.append(float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm()))
        return real_step(self, *args, **kwargs)

    x = torch.full((4, 8), 100.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.SGD, "step", recording_step)
        train_epochs(model, model.parameters(), ctx_for(tmp_path, []), stage="s", epochs=2,
                     optimisation=Optimisation("sgd", 1e-3, grad_clip=0.5), batches=lambda epoch: [x],
                     step=lambda b: Step(model(b).pow(2).mean()))
    assert norms and max(norms) <= 0.5 + 1e-5


@pytest.mark.parametrize("make", [
    lambda: SupervisedTrainer.from_config({"epochs": 2, "batch_size": 8}),
    lambda: TripletTrainer.from_config({"epochs": 2, "batch_size": 8, "mining": "semihard"}, embed=lambda m, x: m.embed(x)[0]),
    lambda: EpisodicTrainer.from_config({"epochs": 2, "episodes_per_epoch": 4, "episodes_per_batch": 2, "k_shot": 2,
                                         "q_query": 2}),
], ids=["supervised", "triplet", "episodic"])
def test_every_core_trainer_steps_through_the_one_loop(tmp_path, monkeypatch, make):
    steps: list[float] = []
    real = loop.descend
    monkeypatch.setattr(loop, "descend", lambda loss, *a, **k: steps.append(loss.item()) or real(loss, *a, **k))
    model = Embedder()
    before = model.lin.weight.detach().clone()
    make().fit(model, fold(), ctx_for(tmp_path, []))
    assert len(steps) >= 2
    assert not torch.equal(before, model.lin.weight)


def test_early_stopping_monitors_the_reported_uf1(tmp_path):
    """val_uf1 is mercore.metrics' UF1 (classes of the ground truth), not a private variant."""
    data = fold()
    val = data.train.subset(list(range(0, 24, 3)))  # class 0 only
    data = FoldData(train=data.train, val=val, test=data.test, test_groups=data.test_groups)
    log: list = []
    model = Embedder()
    SupervisedTrainer.from_config({"epochs": 1, "batch_size": 8, "early_stopping": {"patience": 1, "monitor": "val_uf1"}}
                                  ).fit(model, data, ctx_for(tmp_path, log))
    with torch.no_grad():
        pred = model.lin(val.inputs["x"]).argmax(1)
    expected = scores(val.labels.tolist(), pred.tolist(), 3).uf1
    assert [v for k, v, _ in log if k == "train/val_uf1"] == [pytest.approx(expected)]


def test_episodic_training_refuses_a_model_without_the_prototype_interface(tmp_path):
    with pytest.raises(TypeError, match="prototype model.*Linear"):
        EpisodicTrainer.from_config({"epochs": 1}).fit(nn.Linear(4, 3), fold(), ctx_for(tmp_path, []))


# --- rule 11 inside the fold: retrain at a fallback rate when the loss does not fall ----------------

def fit_with(tmp_path: Path, lr: float, fallback: list[float]) -> tuple[nn.Module, dict]:
    torch.manual_seed(0)
    model = Embedder()
    log: list = []
    trainer = SupervisedTrainer.from_config({"epochs": 6, "batch_size": 8, "lr": lr, "optimizer": "adam",
                                             "fit_check": {"fallback_lr": fallback, "loss_ratio": 0.5}})
    trainer.fit(model, fold(), ctx_for(tmp_path, log))
    return model, {k: v for k, v, _ in log}


def test_fit_check_keeps_the_first_rate_that_fits_and_changes_nothing_then(tmp_path):
    plain, _ = fit_with(tmp_path, 0.3, [])
    checked, log = fit_with(tmp_path, 0.3, [1e-6])
    assert log["train/fit_check_lr"] == 0.3
    for a, b in zip(plain.parameters(), checked.parameters()):
        assert torch.equal(a, b)


def test_fit_check_falls_back_when_the_loss_does_not_fall(tmp_path):
    direct, _ = fit_with(tmp_path, 0.3, [])
    fallen, log = fit_with(tmp_path, 1e-7, [0.3])  # 1e-7: the loss cannot halve in 6 epochs
    assert log["train/fit_check_lr"] == 0.3
    for a, b in zip(direct.parameters(), fallen.parameters()):  # same start, same batches
        assert torch.equal(a, b)


def test_fit_check_keeps_the_lowest_loss_when_no_rate_fits(tmp_path):
    _, log = fit_with(tmp_path, 1e-7, [1e-3, 1e-6])  # none halves the loss in 6 epochs
    assert log["train/fit_check_lr"] == 1e-3
    with pytest.raises(ValueError):
        SupervisedTrainer.from_config({"fit_check": {"fallback_lr": [-1.0], "loss_ratio": 0.5}})


# --- weight averaging -------------------------------------------------------------------------------

def averaged_run(tmp_path: Path, kind: str | None, start: float = 0.5, decay: float = 0.9):
    """Six epochs of SGD on a linear model; the weights after every step and every epoch."""
    from mercore.training.loop import WeightAveraging

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    data = fold()
    after_step, after_epoch = [], []

    def step(batch) -> Step:
        after_step.append(model.weight.detach().clone())  # weights before this batch's update
        inputs, labels = batch
        return Step(nn.functional.cross_entropy(model(inputs["x"]), labels), len(labels))

    def record(epoch, means) -> bool:
        after_epoch.append(model.weight.detach().clone())
        return False

    averaging = None if kind is None else WeightAveraging.from_config({"kind": kind, "start": start, "decay": decay})
    gen = torch.Generator().manual_seed(0)
    train_epochs(model, model.parameters(), ctx_for(tmp_path, []), stage="s", epochs=6,
                 optimisation=Optimisation("sgd", 0.5, averaging=averaging),
                 batches=lambda epoch: data.train.batches(8, shuffle=True, generator=gen), step=step,
                 after_epoch=record)
    return model.weight.detach(), after_step, after_epoch


def test_weight_averaging_off_is_the_last_epoch(tmp_path):
    plain, _, epochs = averaged_run(tmp_path, None)
    off, _, _ = averaged_run(tmp_path, "none")
    assert torch.equal(plain, off) and torch.equal(plain, epochs[-1])


def test_swa_is_the_mean_of_the_epochs_from_start_on(tmp_path):
    averaged, _, epochs = averaged_run(tmp_path, "swa", start=0.5)  # epochs 3, 4, 5 of 0-5
    torch.testing.assert_close(averaged, torch.stack(epochs[3:]).mean(0))
    assert not torch.equal(averaged, epochs[-1])


def test_ema_follows_every_step_from_start_on(tmp_path):
    averaged, steps, epochs = averaged_run(tmp_path, "ema", start=0.5, decay=0.9)
    per_epoch = len(steps) // 6
    after = steps[1:] + [epochs[-1]]  # the weights after each step
    ema = after[3 * per_epoch]  # the first update of epoch 3 copies the weights
    for w in after[3 * per_epoch + 1:]:
        ema = 0.9 * ema + 0.1 * w
    torch.testing.assert_close(averaged, ema)


def test_a_non_finite_loss_stops_training_with_a_clear_error(tmp_path):
    from mercore.training.loop import NonFiniteLoss

    model = nn.Linear(1, 1)

    def step(batch: float) -> Step:
        return Step(model.weight.sum() * batch, 1)

    with pytest.raises(NonFiniteLoss, match="epoch 0"):
        train_epochs(model, model.parameters(), ctx_for(tmp_path, []), stage="s", epochs=2,
                     optimisation=Optimisation("sgd", 0.1), batches=lambda epoch: [1.0, float("nan")], step=step)


# --- reduced precision ------------------------------------------------------------------------------

def test_precision_on_cpu_bf16_when_asked_fp32_by_default_fp16_refused():
    from mercore.training.device import amp_dtype

    cpu = torch.device("cpu")
    assert amp_dtype(cpu, "auto") is None and amp_dtype(cpu, "fp32") is None
    assert amp_dtype(cpu, "bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="run.precision=fp16 needs a CUDA device"):
        amp_dtype(cpu, "fp16")


def test_bf16_autocast_trains_on_cpu_with_fp32_weights_and_changes_the_arithmetic(tmp_path):
    def fit(amp):
        torch.manual_seed(0)
        model = Embedder()
        ctx = ctx_for(tmp_path, [])
        ctx.amp_dtype = amp
        SupervisedTrainer.from_config({"epochs": 3, "batch_size": 8, "lr": 0.1, "optimizer": "adam"}).fit(model, fold(), ctx)
        return model

    plain, reduced = fit(None), fit(torch.bfloat16)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in reduced.parameters())
    assert not torch.equal(plain.lin.weight, reduced.lin.weight)  # the forward ran in bf16
    assert torch.allclose(plain.lin.weight, reduced.lin.weight, atol=0.1)  # and learned the same thing
