"""Episode sampler, prototype classifier, and the episodic and triplet trainer stages."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from mercore import FoldData, Sample, StageContext, TensorSet
from mercore.training.episodic import EpisodeSampler, EpisodicTrainer, PrototypeClassifier
from mercore.training.triplet import TripletSampler, TripletTrainer


def test_episode_sampler_n_way_k_shot_from_given_set_only():
    labels = torch.tensor([0] * 12 + [1] * 9 + [2] * 7)
    sampler = EpisodeSampler(labels, n_way=None, k_shot=5, q_query=2, generator=torch.Generator().manual_seed(1))
    for _ in range(50):
        ep = sampler.sample()
        every = torch.cat([ep.support, ep.query])
        assert len(set(every.tolist())) == len(every)             # no sample twice
        assert every.min() >= 0 and every.max() < len(labels)      # only indices of the given set
        assert (labels[ep.support] == ep.support_labels).all() and (labels[ep.query] == ep.query_labels).all()
        assert ep.classes == [0, 1, 2]                             # N = all classes
        for c in range(3):
            assert int((ep.support_labels == c).sum()) == 5        # K-shot
            assert int((ep.query_labels == c).sum()) == 2
    narrow = EpisodeSampler(labels, n_way=2, k_shot=3, q_query=1, generator=torch.Generator().manual_seed(2))
    seen = set()
    for _ in range(30):
        ep = narrow.sample()
        assert len(ep.classes) == 2
        seen.update(ep.classes)
    assert seen == {0, 1, 2}


def test_episode_sampler_small_classes():
    labels = torch.tensor([0] * 10 + [1] * 3 + [2])
    sampler = EpisodeSampler(labels, k_shot=5, q_query=5)
    assert sampler.shots(10) == (5, 5) and sampler.shots(3) == (2, 1) and sampler.shots(1) == (1, 0)
    ep = sampler.sample()
    assert int((ep.support_labels == 1).sum()) == 2 and int((ep.query_labels == 1).sum()) == 1
    assert int((ep.support_labels == 2).sum()) == 1 and int((ep.query_labels == 2).sum()) == 0
    assert not EpisodeSampler(torch.tensor([0, 0, 0])).usable
    with pytest.raises(ValueError):
        EpisodeSampler(labels, k_shot=0)


def test_triplet_sampler_labels():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    s = TripletSampler(labels, torch.Generator().manual_seed(0))
    anchors = s.anchors()
    assert sorted(anchors.tolist()) == [0, 1, 2, 3, 4]             # class 2 has no positive
    for mining in ("random", "semihard"):
        dist = torch.rand(6, 6)
        a, p, n = s.sample(anchors, mining, dist)
        assert (labels[a] == labels[p]).all() and (a != p).all() and (labels[a] != labels[n]).all()


class TinyEmbedder(nn.Module):
    """A linear embedding with the prototype interface of MPFNet's model."""

    def __init__(self, d_in: int = 6, d: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.lin = nn.Linear(d_in, d)
        self.prototypes = PrototypeClassifier(classes, [d])

    def embed(self, batch):
        return (self.lin(batch["x"]),)

    def forward(self, batch):
        return self.prototypes(self.embed(batch))


def tiny_fold(n_per_class=(12, 8, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    means = torch.randn(len(n_per_class), 6, generator=g) * 2
    x = means[labels] + 0.7 * torch.randn(len(labels), 6, generator=g)
    samples = [Sample(dataset="toy", subject=f"s{i % 4}", clip=f"c{i}") for i in range(len(labels))]
    ts = TensorSet({"x": x}, labels, samples)
    return FoldData(train=ts, val=None, test=ts.subset([0, 1]), test_groups=("toy/s0",))


def ctx_for(tmp_path: Path, log: list) -> StageContext:
    return StageContext(device=torch.device("cpu"), seed=0, num_classes=3, class_names=("a", "b", "c"),
                        fold="f0", work_dir=tmp_path, log_metric=lambda k, v, s: log.append((k, v, s)),
                        progress=False)


def test_episodic_trainer_reduces_loss_and_sets_centroids(tmp_path):
    torch.manual_seed(0)
    data, log, model = tiny_fold(), [], TinyEmbedder()
    trainer = EpisodicTrainer.from_config({"lr": 0.05, "epochs": 15, "episodes_per_epoch": 8, "episodes_per_batch": 4,
                                           "k_shot": 3, "q_query": 3})
    trainer.fit(model, data, ctx_for(tmp_path, log))
    losses = [v for k, v, _ in log if k == "meta/loss"]
    assert len(losses) == 15 and losses[-1] < losses[0]
    assert model.prototypes.fitted and model.prototypes.present.all()
    acc = (model(data.train.inputs).argmax(1) == data.train.labels).float().mean()
    assert acc > 0.8
    # the centroids are the mean embeddings of all training samples of each class
    with torch.no_grad():
        z = model.lin(data.train.inputs["x"])
    for c in range(3):
        assert torch.allclose(model.prototypes.centroid_0[c], z[data.train.labels == c].mean(0), atol=1e-5)


def test_episodic_trainer_support_centroids_and_missing_class(tmp_path):
    data = tiny_fold((10, 5, 0))
    model, log = TinyEmbedder(), []
    EpisodicTrainer.from_config({"epochs": 2, "episodes_per_epoch": 4, "centroids": "support", "k_shot": 2}).fit(
        model, data, ctx_for(tmp_path, log))
    assert model.prototypes.present.tolist() == [True, True, False]
    assert (model(data.train.inputs).argmax(1) != 2).all()   # an absent class is never predicted
    with pytest.raises(ValueError):
        EpisodicTrainer.from_config({"centroids": "median"})
    with pytest.raises(ValueError):
        EpisodicTrainer.from_config({"epochz": 3})


def test_triplet_trainer_reduces_loss(tmp_path):
    torch.manual_seed(0)
    data, log = tiny_fold(), []
    for mining in ("random", "semihard"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 4))
        log.clear()
        trainer = TripletTrainer.from_config({"lr": 0.05, "epochs": 12, "batch_size": 8, "margin": 0.5, "mining": mining},
                                             stage_name="gfe", embed=lambda m, x: m(x["x"]))
        trainer.fit(model, data, ctx_for(tmp_path, log))
        losses = [v for k, v, _ in log if k == "gfe/loss"]
        assert len(losses) == 12
        assert min(losses[-3:]) < losses[0]
    with pytest.raises(ValueError):
        TripletTrainer.from_config({"mining": "hardest"})


@pytest.mark.parametrize("centroids", ["all", "support"])
def test_episodic_audit_scores_the_final_model_and_changes_nothing(tmp_path, centroids):
    """The audit of the meta stage predicts with the centroids the epoch's model would end with
    (issue 33: MPFNet's audit scored the AFE head instead), and the run is the same without it."""
    config = {"lr": 0.05, "epochs": 4, "episodes_per_epoch": 8, "episodes_per_batch": 4, "k_shot": 3, "q_query": 3,
              "centroids": centroids}
    data, results = tiny_fold(), {}
    for audited in (False, True):
        torch.manual_seed(0)
        model, audit = TinyEmbedder(), {}
        ctx = ctx_for(tmp_path, [])
        if audited:
            ctx.audit = lambda m, epoch: audit.setdefault(epoch, m(data.test.inputs).argmax(1).tolist())
        EpisodicTrainer.from_config(config).fit(model, data, ctx)
        results[audited] = (model.state_dict(), audit)
    (plain, _), (audited_state, audit) = results[False], results[True]
    assert all(torch.equal(plain[k], audited_state[k]) for k in plain)
    assert sorted(audit) == [0, 1, 2, 3]
    model = TinyEmbedder()
    model.load_state_dict(audited_state)
    assert audit[3] == model(data.test.inputs).argmax(1).tolist()  # the last epoch's audit is the final model


def test_leaky_selection_reads_the_last_audited_stage_only():
    from mercore.evaluation.results import FoldResult, RunResult

    fold = FoldResult(index=0, fold="s0", keys=["a", "b"], datasets=["toy"] * 2, subjects=["s0"] * 2, y_true=[0, 1],
                      y_pred=[0, 0], probabilities=[[1, 0], [1, 0]], baseline_pred=[0, 0],
                      audit={"afe:0": [0, 1], "afe:1": [0, 1], "meta:0": [1, 0], "meta:1": [0, 0]})
    run = RunResult("m", None, "toy", "t", ("x", "y"), {}, [fold], Path("."))
    assert run.leaky_scores().acc == 0.5  # the AFE head's perfect epochs are not the method's


def test_sum_reduction_scales_each_loss_by_its_triplets_or_queries(tmp_path):
    """MPFNet's eqs. 6 and 19 print sums; ``reduction: sum`` gives them, ``mean`` (the default) the
    average: on the same first batch the sum is the mean times the batch's triplets or queries."""
    data = tiny_fold()
    first = {}
    for reduction in ("mean", "sum"):
        log: list = []
        torch.manual_seed(0)
        TripletTrainer.from_config({"lr": 1e-9, "epochs": 1, "batch_size": 40, "reduction": reduction},
                                   stage_name="gfe", embed=lambda m, x: m(x["x"])).fit(
            nn.Sequential(nn.Linear(6, 4)), data, ctx_for(tmp_path, log))
        torch.manual_seed(0)
        EpisodicTrainer.from_config({"lr": 1e-9, "epochs": 1, "episodes_per_epoch": 1, "episodes_per_batch": 1,
                                     "k_shot": 3, "q_query": 3, "reduction": reduction}).fit(
            TinyEmbedder(), data, ctx_for(tmp_path, log))
        first[reduction] = {k: v for k, v, _ in log if k in ("gfe/loss", "meta/loss")}
    triplets = len(data.train)  # every sample is an anchor once: one batch of 26
    assert first["sum"]["gfe/loss"] == pytest.approx(first["mean"]["gfe/loss"] * triplets, rel=1e-4)
    assert first["sum"]["meta/loss"] == pytest.approx(first["mean"]["meta/loss"] * 9, rel=1e-4)  # 3 classes x 3
    with pytest.raises(ValueError):
        TripletTrainer.from_config({"reduction": "max"})
