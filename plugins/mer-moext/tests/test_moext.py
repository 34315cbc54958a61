"""MoExt plugin: module shapes, losses by hand, pre-training, ablations, macro filter, registration, LOSO."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import mer_moext.plugin
from mer_moext.losses import onset_apex_loss, reconstruction_loss, shape_texture_loss
from mer_moext.model import (IMAGENET_MEAN, IMAGENET_STD, ApexReconstructor, Branch, ConvBlock, MotionExtractor,
                             ResNetTrunk, build_model)
from mer_moext.plugin import MoExt
from mer_moext.pretrain import (PREVIEW_FILE, MirrorRotate, MoExtPretrainer, ObjectiveTrainer, RepeatedSet,
                                ViewExpansion, batch_indices, filter_pretraining, pseudo_apex)
from mercore import FoldData, Sample, StageContext, TensorSet
from mercore.config import resolve_config
from mercore.plugins import load_registry
from mercore.shared import shared_dir

torch.set_num_threads(1)


def config(profile: str = "quick", **sets) -> dict:
    return resolve_config(MoExt(), profile=profile, sets=[f"{k}={v}" for k, v in sets.items()])


def adapter(name: str):
    """The installed dataset adapter ``name``, as a run's stage context hands it over."""
    return load_registry().dataset(name)


def pretrainer(**overrides) -> MoExtPretrainer:
    """The paper's pre-training stage with ``overrides``."""
    return MoExtPretrainer.from_config({**config()["pretrain"], **overrides})


def tiny_model_cfg() -> dict:
    """A narrow model at 32x32 for fast training tests."""
    cfg = copy.deepcopy(config()["model"])
    cfg.update(backbone_widths=[8, 8, 16, 16], feature_dim=16, branch_fc=[16], recon_widths=[16, 16, 8, 8],
               recon_refine_width=8, recon_refine_blocks=1, projection_hidden=16, projection_out=8)
    return cfg


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- shapes --------------------------------------------------------------------------------------

def test_shapes_through_every_module_at_224():
    trunk = ResNetTrunk()
    assert trunk(torch.rand(1, 3, 224, 224)).shape == (1, 512, 7, 7) and trunk.out_channels == 512
    assert ConvBlock(512, 512)(torch.rand(2, 512, 7, 7)).shape == (2, 512, 7, 7)
    branch = Branch(512, 512, 1, [512], 512)
    assert branch(torch.rand(2, 512, 7, 7)).shape == (2, 512)
    motion = MotionExtractor(512)
    assert motion(torch.rand(2, 512), torch.rand(2, 512)).shape == (2, 512)
    recon = ApexReconstructor(1024, 224)
    # Table 2 row by row: 1 -> 2 -> 4 -> 8 (512), AvgPool(2, 1) -> 7, then 14 ... 112, 224
    x = torch.rand(2, 1024, 1, 1)
    sizes = []
    for layer in list(recon.lower) + list(recon.upper):
        x = layer(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes[:4] == [(512, 2, 2), (512, 4, 4), (512, 8, 8), (512, 7, 7)]
    assert sizes[4:8] == [(512, 14, 14), (256, 28, 28), (128, 56, 56), (64, 112, 112)]
    assert sizes[8:13] == [(32, 112, 112)] * 5 and sizes[-1] == (3, 224, 224) and sizes[-3] == (32, 224, 224)
    assert isinstance(recon.lower[3], nn.AvgPool2d) and recon.lower[3].kernel_size == 2


@pytest.mark.parametrize("size,lower", [(64, 1), (96, 3), (32, 0)])
def test_reconstruction_ladder_scales(size, lower):
    recon = ApexReconstructor(32, size, (16, 8, 8, 8), 8, 2)
    assert len(recon.lower) == lower  # 64: one up-conv; 96: two up-convs + AvgPool 4 -> 3; 32: none
    assert recon(torch.rand(2, 32)).shape == (2, 3, size, size)
    with pytest.raises(ValueError):
        ApexReconstructor(32, size + 8)


def test_full_model_paths_at_the_quick_size():
    cfg = config()
    model = MoExt().build_model(cfg, 3)
    s = cfg["features"]["size"]
    assert s == 64
    views = torch.rand(2, 2, 3, 3, s, s)
    out = model.pretrain_outputs(views)
    d = cfg["model"]["feature_dim"]
    assert out["shape"].shape == out["texture"].shape == (2, 2, 3, d)
    assert out["motion"].shape == (2, d) and out["recon"].shape == (2, 3, s, s) and (out["recon"] >= 0).all()
    assert model.projection(out["shape"]).shape == (2, 2, 3, cfg["model"]["projection_out"])
    assert model({"onset": views[:, 0, 0], "apex": views[:, 1, 0]}).shape == (2, 3)
    n = n_params(model)
    model.drop_pretraining_modules()
    assert model.separator.texture is None and model.reconstructor is None and model.projection is None
    assert n_params(model) < n and model({"onset": views[:, 0, 0], "apex": views[:, 1, 0]}).shape == (2, 3)
    with pytest.raises(RuntimeError):
        model.pretrain_outputs(views)


def test_paper_model_parameter_count():
    model = MoExt().build_model(config("paper"), 3)
    sep = n_params(model.separator)
    assert n_params(model.separator.backbone) == 11_176_512  # torchvision's resnet18 minus fc (11,689,512 - 513,000)
    assert n_params(model.separator.shape) == n_params(model.separator.texture)
    print(f"MoExt paper parameters: {n_params(model):,} (separator {sep:,})")


def torchvision_names(state: dict) -> dict:
    """This trunk's state dict under torchvision's resnet key names, plus an ImageNet fc."""
    out = {"fc.weight": torch.zeros(1000, 16), "fc.bias": torch.zeros(1000)}
    for key, value in state.items():
        key = key.replace("stem.0.", "conv1.").replace("stem.1.", "bn1.").replace("shortcut.", "downsample.")
        if key.startswith("layers."):
            _, stage, rest = key.split(".", 2)
            key = f"layer{int(stage) + 1}.{rest}"
        out[key] = value
    return out


def test_backbone_weights_load_from_torchvision_names(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_model_cfg()
    donor = ResNetTrunk(cfg["backbone_widths"], cfg["backbone_blocks"])
    for m in donor.modules():  # non-default running statistics, so that they are checked too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    weights = tmp_path / "resnet.pth"
    torch.save(torchvision_names(donor.state_dict()), weights)
    assert "layer2.0.downsample.0.weight" in torch.load(weights, weights_only=True)

    model = build_model({**cfg, "backbone_weights": str(weights)}, 3, 32)
    trunk = model.separator.backbone
    assert trunk.state_dict().keys() == donor.state_dict().keys()
    assert all(torch.equal(v, donor.state_dict()[k]) for k, v in trunk.state_dict().items())
    # pretrained ImageNet weights expect standardised inputs: the trunk applies the mean/std itself
    x = torch.rand(2, 3, 32, 32)
    trunk.eval(), donor.eval()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(trunk(x), donor((x - mean) / std))
    assert not build_model(cfg, 3, 32).separator.backbone.standardize


def test_backbone_weights_errors_name_the_file_and_keys(tmp_path):
    cfg = tiny_model_cfg()
    with pytest.raises(ValueError, match="model.backbone_weights: no such file .*nope.pth"):
        build_model({**cfg, "backbone_weights": str(tmp_path / "nope.pth")}, 3, 32)
    wider = tmp_path / "wider.pth"
    torch.save(torchvision_names(ResNetTrunk([16, 16, 16, 16], cfg["backbone_blocks"]).state_dict()), wider)
    with pytest.raises(ValueError, match=r"wider\.pth.*shape differs: \['layers\.0\.0\.bn1"):
        build_model({**cfg, "backbone_weights": str(wider)}, 3, 32)
    partial = tmp_path / "partial.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7)}, partial)
    with pytest.raises(ValueError, match=r"partial\.pth.*missing: \["):
        build_model({**cfg, "backbone_weights": str(partial)}, 3, 32)
    assert resolve_config(MoExt(), sets=[f"model.backbone_weights={wider}"])["model"]["backbone_weights"] == str(wider)


def test_motion_extractor_formula():
    torch.manual_seed(0)
    e = MotionExtractor(6).eval()
    so, sa = torch.randn(3, 6), torch.randn(3, 6)
    d = (sa - so).abs()[..., None, None]
    expect = e.c2(torch.cat([e.c1(d), sa[..., None, None]], 1)).flatten(1)
    torch.testing.assert_close(e(so, sa), expect)
    assert MotionExtractor(6, kernel=3)(so, sa).shape == (3, 6)


# --- losses ---------------------------------------------------------------------------------------

def test_reconstruction_loss_is_mean_l1():
    assert reconstruction_loss(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)).item() == pytest.approx(0.5)


def test_shape_texture_loss_by_hand():
    # n = 1, 2m = 2, p = 2. Anchor (0, 0). View 0: shape (1, 0), texture (1, 1): 1 - 1 + 0.3 = 0.3.
    # View 1: shape (0, 1), texture (0, 4): 1 - 3 + 0.3 < 0 -> 0. Mean = 0.15.
    fs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    ft = torch.tensor([[[1.0, 1.0], [0.0, 4.0]]])
    assert shape_texture_loss(fs, ft, torch.zeros(2), 0.3).item() == pytest.approx(0.15)


def test_onset_apex_loss_by_hand():
    # one sample, views: onset (0,0), onset (0.1,0), apex (0.2,0), apex (1,0); eps 0.3.
    fs = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [1.0, 0.0]]])
    is_apex = torch.tensor([False, False, True, True])
    # same-label pairs (ordered): 0-1: 0.1 x2, 2-3: 0.8 x2 -> 1.8
    # cross pairs (ordered): 0-2: 0.1, 0-3: 0, 1-2: 0.2, 1-3: 0 -> 0.3 x2 = 0.6; total 2.4 / 16
    assert onset_apex_loss(fs, is_apex, 0.3).item() == pytest.approx(2.4 / 16)
    fs.requires_grad_(True)
    onset_apex_loss(fs, is_apex, 0.3).backward()
    assert torch.isfinite(fs.grad).all()


def test_view_expansion():
    exp = ViewExpansion(views=3)
    onset, apex = torch.rand(5, 3, 8, 8), torch.rand(5, 3, 8, 8)
    views = exp(onset, apex, torch.Generator().manual_seed(0))
    assert views.shape == (5, 2, 3, 3, 8, 8)
    torch.testing.assert_close(views[:, 0, 0], onset)
    torch.testing.assert_close(views[:, 1, 0], apex)
    assert not torch.equal(views[:, :, 1], views[:, :, 2])  # two different operations per sample
    assert views.min() >= 0 and views.max() <= 1
    gray = exp.apply("grayscale", torch.rand(2, 2, 3, 4, 4), torch.Generator())
    torch.testing.assert_close(gray[:, :, 0], gray[:, :, 2])
    with pytest.raises(ValueError):
        ViewExpansion(views=5)
    with pytest.raises(ValueError):
        ViewExpansion(ops=("blur",))


def test_mirror_rotate_keeps_streams_aligned():
    aug = MirrorRotate(flip=1.0, rotate=0.0)
    x = torch.rand(3, 3, 8, 8)
    out = aug({"onset": x, "apex": x.clone()}, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["onset"], x.flip(-1))
    rot = MirrorRotate(flip=0.5, rotate=10.0)({"onset": x, "apex": x.clone()}, torch.Generator().manual_seed(1))
    torch.testing.assert_close(rot["onset"], rot["apex"])
    assert not torch.allclose(rot["onset"], x)


def test_batches_never_end_with_one_sample():
    for n in (1, 2, 20, 21, 41):
        sizes = [len(b) for b in batch_indices(n, 20, torch.Generator().manual_seed(0))]
        assert sum(sizes) == n and (n == 1 or min(sizes) > 1)


# --- pre-training ---------------------------------------------------------------------------------

def synthetic_pairs(n: int = 8, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Blob faces whose apex moves a bright patch by a couple of pixels."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g) * 0.5 + 0.2
    onset = base.expand(n, 3, size, size).clone()
    apex = onset.clone()
    for i in range(n):
        y, x = (int(v) for v in torch.randint(4, size - 10, (2,), generator=g))
        onset[i, :, y:y + 6, x:x + 6] = 0.9
        apex[i, :, y + 2:y + 8, x + 1:x + 7] = 0.9
    return onset, apex


def fold_of(onset: torch.Tensor, apex: torch.Tensor, labels: torch.Tensor | None = None, subjects=None) -> FoldData:
    n = len(onset)
    subjects = subjects or [f"sub{1 + i % 3:02d}" for i in range(n)]
    samples = [Sample("toy", s, f"c{i}") for i, s in enumerate(subjects)]
    labels = labels if labels is not None else torch.arange(n) % 2
    test = TensorSet({"onset": onset[:2], "apex": apex[:2]}, labels[:2], [Sample("toy", "sub09", "t0"),
                                                                           Sample("toy", "sub09", "t1")])
    return FoldData(TensorSet({"onset": onset, "apex": apex}, labels, samples), None, test, ("toy/sub09",))


def ctx_for(tmp_path: Path, log: list | None = None) -> StageContext:
    return StageContext(device=torch.device("cpu"), seed=0, num_classes=2, class_names=("a", "b"), fold="f",
                        work_dir=tmp_path, progress=False, datasets=load_registry().dataset_adapters(),
                        log_metric=(lambda k, v, s: log.append((k, v, s))) if log is not None else (lambda *a: None))


def test_pretraining_lowers_reconstruction_loss(tmp_path):
    torch.manual_seed(0)
    onset, apex = synthetic_pairs(8)
    model = build_model(tiny_model_cfg(), 2, 32)
    stage = pretrainer(epochs=1, batch_size=8, lr=3e-3, micro_sources=[], macro_source="none", preview=3)
    expansion = ViewExpansion()

    def l_re() -> float:
        model.train()  # BN batch statistics, as during training
        with torch.no_grad():
            return stage.losses(model, onset, apex, expansion, torch.Generator().manual_seed(5))["l_re"].item()

    before = l_re()
    log: list = []
    stage.epochs = 12
    stage.fit(model, fold_of(onset, apex), ctx_for(tmp_path, log))
    after = l_re()
    print("L_re before", before, "after", after)
    assert after < 0.7 * before, (before, after)
    keys = {k for k, _, _ in log}
    assert {"pretrain/l_re", "pretrain/l_st", "pretrain/l_ss", "pretrain/loss", "pretrain/macro_pairs"} <= keys
    from mercore import read_image
    grid = read_image(tmp_path / PREVIEW_FILE)
    assert grid.shape == (3 * 32, 3 * 32, 3)


def test_pretraining_updates_separator_and_motion_but_objective_drops_texture(tmp_path):
    torch.manual_seed(0)
    onset, apex = synthetic_pairs(6)
    model = build_model(tiny_model_cfg(), 2, 32)
    w0 = model.motion.c1[0].weight.detach().clone()
    pretrainer(epochs=1, batch_size=6, micro_sources=[], macro_source="none", preview=0).fit(
        model, fold_of(onset, apex), ctx_for(tmp_path))
    assert not torch.equal(w0, model.motion.c1[0].weight)
    w1 = model.motion.c1[0].weight.detach().clone()
    trainer = ObjectiveTrainer.from_config({"epochs": 1, "batch_size": 5, "lr": 1e-3})  # 6 % 5 == 1: runs with batch 6
    trainer.fit(model, fold_of(onset, apex), ctx_for(tmp_path))
    assert model.separator.texture is None and model.reconstructor is None
    assert not torch.equal(w1, model.motion.c1[0].weight)  # fine-tuned, starting from the pre-trained weights


def test_copies_make_each_epoch_that_many_passes_with_fresh_draws(tmp_path, monkeypatch):
    """`augment.copies` (the paper's "ten times the original data size"): every epoch of both stages
    takes `copies` times the optimiser steps, each clip seen `copies` times, each pass augmented anew."""
    from mercore.training import loop

    repeated = RepeatedSet({"x": torch.arange(5.0)[:, None]}, torch.arange(5), [Sample("toy", "a", f"c{i}")
                                                                                  for i in range(5)], copies=3)
    seen = torch.cat([y for _, y in repeated.batches(4, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == sorted(list(range(5)) * 3) and len(repeated.to(torch.device("cpu")).samples) == 5
    assert sorted(torch.cat(batch_indices(5, 4, torch.Generator().manual_seed(0), copies=3)).tolist()) == \
        sorted(list(range(5)) * 3)
    steps: list[float] = []
    real = loop.descend
    monkeypatch.setattr(loop, "descend", lambda loss, *a, **k: steps.append(loss.item()) or real(loss, *a, **k))
    onset, apex = synthetic_pairs(6)
    model = build_model(tiny_model_cfg(), 2, 32)
    drawn: list[torch.Tensor] = []

    def augment(inputs, generator):  # records each batch's onset as augmented
        out = MirrorRotate(0.5, 10.0)(inputs, generator)
        drawn.append(out["onset"])
        return out

    for copies in (1, 3):
        steps.clear()
        settings = {"epochs": 1, "batch_size": 3, "micro_sources": [], "macro_source": "none", "preview": 0}
        MoExtPretrainer.from_config({**config()["pretrain"], **settings}, augment=augment, copies=copies).fit(
            model, fold_of(onset, apex), ctx_for(tmp_path))
        assert len(steps) == 2 * copies
    views = torch.cat(drawn[2:])  # the 3-copy run: 18 augmented onsets of the 6 clips
    assert len(views) == 18 and len({tuple(v.flatten()[:50].tolist()) for v in views}) > 6  # fresh draws per pass
    steps.clear()
    ObjectiveTrainer.from_config({"epochs": 2, "batch_size": 4, "lr": 1e-3}, copies=3).fit(
        model, fold_of(onset, apex), ctx_for(tmp_path))
    assert len(steps) == 2 * 5  # 18 pairs a pass of three copies: batches of 4, 4, 4, 4, 2


def test_copies_and_fold_clips_of_the_profiles():
    """The paper profile takes ten passes and pre-trains on the source corpora's clips only; quick
    keeps the one pass and every fold clip it was measured with."""
    paper, quick = config("paper"), config("quick")
    assert (paper["augment"]["copies"], paper["pretrain"]["fold_clips"]) == (10, "sources")
    assert (quick["augment"]["copies"], quick["pretrain"]["fold_clips"]) == (1, "all")
    with pytest.raises(ValueError, match="augment.copies"):
        MoExt().stages(config("quick", **{"augment.copies": 0}))


# --- ablations ------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["full", "no-pretrain", "no-macro", "no-motion-extractor", "no-lst", "no-lss"])
def test_ablation_variants_build_and_switch(variant):
    method = MoExt()
    cfg = resolve_config(method, variant=variant, profile="quick")
    pre, obj = method.stages(cfg)
    assert isinstance(pre, MoExtPretrainer) and isinstance(obj, ObjectiveTrainer)
    model = method.build_model(cfg, 3)
    assert pre.enabled == (variant != "no-pretrain")
    assert (pre.macro_source == "none") == (variant == "no-macro")
    assert (pre.a1 == 0) == (variant == "no-lst") and (pre.a2 == 0) == (variant == "no-lss")
    assert (model.motion.mode == "difference") == (variant == "no-motion-extractor")
    assert model({"onset": torch.rand(2, 3, 64, 64), "apex": torch.rand(2, 3, 64, 64)}).shape == (2, 3)


def test_ablations_change_behaviour(tmp_path):
    onset, apex = synthetic_pairs(4)
    e = MotionExtractor(16, "difference")
    assert n_params(e) == 0
    so, sa = torch.randn(2, 16), torch.randn(2, 16)
    torch.testing.assert_close(e(so, sa), (sa - so).abs())
    # w/o pre-training: the stage returns the model untouched
    model = build_model(tiny_model_cfg(), 2, 32)
    state = copy.deepcopy(model.state_dict())
    pretrainer(enabled=False).fit(model, fold_of(onset, apex), ctx_for(tmp_path))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    # a1 = 0 and a2 = 0 leave L_re alone in the total
    model = build_model(tiny_model_cfg(), 2, 32).train()
    for a1, a2 in ((0.0, 0.1), (0.1, 0.0), (0.0, 0.0)):
        stage = pretrainer(a1=a1, a2=a2)
        t = stage.losses(model, onset, apex, ViewExpansion(), torch.Generator().manual_seed(0))
        torch.testing.assert_close(t["loss"], t["l_re"] + a1 * t["l_st"] + a2 * t["l_ss"])
        assert t["l_st"] > 0 and t["l_ss"] > 0
    with pytest.raises(ValueError):
        build_model({**tiny_model_cfg(), "motion_extractor": "flow"}, 2, 32)
    with pytest.raises(ValueError):
        pretrainer(macro_source="ckplus")
    with pytest.raises(ValueError):
        pretrainer(alpha=1)


# --- macro data -----------------------------------------------------------------------------------

def test_macro_filter_never_includes_the_test_subject():
    train = [Sample("synthetic", s, "EP01") for s in ("sub01", "sub02", "sub03")]
    val = [Sample("synthetic", "sub04", "EP01")]
    test = [Sample("synthetic", "sub05", "EP01")]
    macro = [Sample("synthetic", f"sub{i:02d}", f"MA0{j}") for i in range(1, 8) for j in range(2)]
    macro += [Sample("casme3", "spNO.1", "a"), Sample("casme3", "spNO.2", "b")]

    def ts(samples):
        return TensorSet({"onset": torch.zeros(len(samples), 1)}, torch.zeros(len(samples), dtype=torch.long), samples)

    data = FoldData(ts(train), ts(val), ts(test), ("synthetic/sub05",))
    kept = filter_pretraining(macro, data)
    groups = {s.group for s in kept}
    assert groups == {"synthetic/sub01", "synthetic/sub02", "synthetic/sub03", "casme3/spNO.1", "casme3/spNO.2"}
    assert "synthetic/sub05" not in groups and "synthetic/sub04" not in groups  # test and validation subjects
    assert "synthetic/sub06" not in groups  # not in this run at all
    # a macro corpus that is the evaluated corpus (CAS(ME)^3 on CAS(ME)^3) is filtered the same way
    data3 = FoldData(ts([Sample("casme3", "spNO.1", "x")]), None, ts([Sample("casme3", "spNO.2", "y")]), ("casme3/spNO.2",))
    casme3 = [s for s in macro if s.dataset == "casme3"]
    assert {s.group for s in filter_pretraining(casme3, data3)} == {"casme3/spNO.1"}


def test_sources_auto_need_the_paper_corpora_on_real_data():
    onset, apex = synthetic_pairs(2)
    data = fold_of(onset, apex)  # dataset "toy", not synthetic: auto -> CASME II + CAS(ME)^3
    with pytest.raises(ValueError, match="casme3_root"):
        pretrainer().macro_samples(data, adapter)
    with pytest.raises(ValueError, match="casme2_root"):
        pretrainer().micro_samples(data, adapter)
    assert pretrainer(macro_source="none").macro_samples(data, adapter) == []
    assert pretrainer(micro_sources=[]).micro_samples(data, adapter) == []
    with pytest.raises(ValueError, match="micro_sources"):
        pretrainer(micro_sources="casme2")
    with pytest.raises(ValueError, match="micro_sources"):
        pretrainer(micro_sources=["ckplus"])


def test_pseudo_apex_is_the_fifth_frame():
    s = Sample("synthetic", "sub01", "MA01", frames=tuple(Path(f"{i}.jpg") for i in range(50)), onset=2, apex=30, offset=48)
    assert pseudo_apex(s, 5).apex == 6 and pseudo_apex(s, 5).onset == 2
    short = Sample("synthetic", "sub01", "MA02", frames=(Path("a"), Path("b"), Path("c")), onset=0, apex=1, offset=2)
    assert pseudo_apex(short, 5).apex == 2


def test_synthetic_pretraining_pairs_come_from_training_subjects(tmp_path):
    """End to end on a tiny generated corpus: the stage adds the training subjects' clips of every
    emotion (outside the task's classes too) and their macro clips, and extracts their frames."""
    from mercore.data.synthetic import SyntheticDataset
    from mercore.features.extractors import BUILTIN_EXTRACTORS
    from mercore.features.store import FeatureStore
    from mercore import LoadOptions

    opts = {"subjects": 3, "clips_per_subject": 6, "size": 32, "min_frames": 8, "max_frames": 10,
            "macro_clips_per_subject": 1}
    micro = SyntheticDataset().load(None, LoadOptions(task="megc3", cache_dir=tmp_path, extra=opts)).samples
    every = SyntheticDataset().load(None, LoadOptions(task="megc3", cache_dir=tmp_path,
                                                      extra={**opts, "all_emotions": True})).samples
    assert len(every) > len(micro)  # "others" clips have no megc3 label and are not in the task
    store = FeatureStore({e.name: e for e in BUILTIN_EXTRACTORS}, tmp_path)
    method = MoExt()
    cfg = config(**{"features.size": 32})
    requests = method.features(cfg)
    train = [s for s in micro if s.subject != "sub03"]
    test = [s for s in micro if s.subject == "sub03"]

    def ts(samples):
        return TensorSet({k: store.stack(r, samples) for k, r in requests.items()},
                         torch.zeros(len(samples), dtype=torch.long), samples)

    data = FoldData(ts(train), None, ts(test), ("synthetic/sub03",))
    stage = MoExtPretrainer.from_config(cfg["pretrain"], requests=requests)
    extra = stage.micro_samples(data, adapter)
    expected = {s.key for s in every if s.subject != "sub03"} - {s.key for s in train}
    assert extra and {s.key for s in extra} == expected and all(s.frames for s in extra)
    macro = stage.macro_samples(data, adapter)
    assert macro and {s.subject for s in macro} == {"sub01", "sub02"}
    assert all(s.apex == s.onset + 4 and s.clip.startswith("MA") for s in macro)
    ctx = ctx_for(tmp_path)
    ctx.extract = store.stack
    onset, apex, counts = stage.pairs(data, ctx)
    assert counts == {"micro_pairs": len(train), "extra_micro_pairs": len(expected), "macro_pairs": 2}
    assert onset.shape == apex.shape == (len(train) + len(expected) + 2, 3, 32, 32)


# --- registration and LOSO ------------------------------------------------------------------------

def test_registration():
    from mercore.plugins import load_registry

    registry = load_registry(extra_plugins=[("moext", mer_moext.plugin)])
    method = registry.method("moext")
    assert isinstance(method, MoExt)
    cfg = resolve_config(method, profile="paper")
    assert cfg["pretrain"]["lr"] == 1e-4 and cfg["pretrain"]["batch_size"] == 20 and cfg["pretrain"]["epochs"] == 30
    assert cfg["train"]["lr"] == 1e-4 and cfg["train"]["weight_decay"] == 1e-4 and cfg["train"]["epochs"] == 30
    assert 0.2 <= cfg["pretrain"]["margin"] <= 0.5 and cfg["features"]["size"] == 224
    assert {k: (r.extractor, r.params["size"]) for k, r in method.features(cfg).items()} == {
        "onset": ("onset_frame", 224), "apex": ("apex_frame", 224)}


def test_face_alignment_option_reaches_both_frames():
    requests = MoExt().features(config(**{"features.align": "dlib"}))
    assert {k: r.params["align"] for k, r in requests.items()} == {"onset": "dlib", "apex": "dlib"}
    assert {r.params["align"] for r in MoExt().features(config()).values()} == {"none"}


@pytest.mark.slow
def test_short_loso_runs_both_stages_end_to_end(tmp_path):
    """Pre-training, preview and objective learning on every fold. Recognition accuracy is not
    asserted: at this scale MoExt is at chance (docs/methods/moext.md, "Our results")."""
    from mercore.runner import run
    from mercore.spec import ExecutionOptions, RunSpec

    overrides = {"pretrain.epochs": 3, "train.epochs": 12, "features.size": 32,
                 "model.recon_widths": [16, 16, 8, 8], "model.recon_refine_blocks": 1}
    subjects = ["sub01", "sub02", "sub03", "sub04"]
    result = run(RunSpec("moext", dataset="synthetic", dataset_options={"clips_per_subject": 8}, profile="quick",
                         overrides=overrides, subjects=subjects),
                 ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False))
    print("MoExt short LOSO:", result.metrics, "baseline:", result.baseline)
    held_out = [sorted({s.split("/")[-1] for s in f.subjects}) for f in result.folds]
    assert sorted(held_out) == [[s] for s in subjects]
    assert all(len(f.y_pred) == len(f.y_true) > 0 for f in result.folds)
    assert all(math.isfinite(result.metrics[k]) for k in ("uf1", "uar"))
    assert len(list(Path(result.run_dir, "folds").rglob(PREVIEW_FILE))) == len(subjects)
    assert [[Path(a).name for a in f.artifacts] for f in result.folds] == [[PREVIEW_FILE]] * len(subjects)  # -> MLflow


SHARED_ANNOTATIONS = shared_dir() / "data" / "annotations"


@pytest.mark.skipif(not (SHARED_ANNOTATIONS / "casme3_partA_ME_label_JpgIndex_v2.xlsx").is_file(),
                    reason="../shared annotations absent")
def test_paper_sources_casme2_and_casme3_every_emotion_never_the_test_subject(tmp_path):
    """CASME II found from the evaluated clips, CAS(ME)^3 from its option; every emotion, no test subject."""
    from mercore import LoadOptions
    from mercore.data.casme2 import Casme2Dataset
    from mercore.data.casme3 import Casme3Dataset
    from mercore.testing.layouts import write_casme2, write_casme3

    root2 = write_casme2(tmp_path / "casme2", SHARED_ANNOTATIONS, frames_per_clip=None)  # every frame: no gaps
    root3 = write_casme3(tmp_path / "casme3", SHARED_ANNOTATIONS, macro_rows=1)
    evaluated = Casme2Dataset().load(root2, LoadOptions(task="megc3")).samples

    def ts(samples):
        return TensorSet({"onset": torch.zeros(len(samples), 1)}, torch.zeros(len(samples), dtype=torch.long), samples)

    train = [s for s in evaluated if s.subject != "sub01"]
    data = FoldData(ts(train), None, ts([s for s in evaluated if s.subject == "sub01"]), ("casme2/sub01",))
    stage = pretrainer(casme3_root=str(root3))  # micro_sources / macro_source: auto
    extra = stage.micro_samples(data, adapter)
    casme2 = [s for s in extra if s.dataset == "casme2"]
    every2 = Casme2Dataset().load(root2, LoadOptions(extra={"all_emotions": True})).samples
    train_groups = {s.group for s in train}  # sub10 and sub18 have no 3-class clip: not in the run, left out
    assert {s.key for s in casme2} == {s.key for s in every2 if s.group in train_groups} - {s.key for s in train}
    assert casme2 and all("megc3" not in s.labels for s in casme2)  # only clips outside the task were missing
    every3 = Casme3Dataset().load(root3, LoadOptions(extra={"all_emotions": True}, skip_invalid=True)).samples
    assert {s.key for s in extra if s.dataset == "casme3"} == {s.key for s in every3}  # not evaluated: all of it
    assert len(every3) > 699  # more than the 3-class set: "others" count for pre-training
    macro = stage.macro_samples(data, adapter)
    assert macro and {s.dataset for s in macro} == {"casme3"}
    assert not {s.group for s in extra + macro} & {"casme2/sub01"}
    # the evaluated CAS(ME)^3 needs no root option either: found from its clips' frames
    evaluated3 = Casme3Dataset().load(root3, LoadOptions()).samples
    test3 = evaluated3[0].group
    data3 = FoldData(ts([s for s in evaluated3 if s.group != test3]), None, ts([s for s in evaluated3 if s.group == test3]),
                     (test3,))
    extra3 = pretrainer(micro_sources=["casme3"]).micro_samples(data3, adapter)
    assert extra3 and test3 not in {s.group for s in extra3}


def test_pretraining_steps_through_the_core_training_loop(tmp_path, monkeypatch):
    from mercore.training import loop

    steps: list[float] = []
    real = loop.descend
    monkeypatch.setattr(loop, "descend", lambda loss, *a, **k: steps.append(loss.item()) or real(loss, *a, **k))
    onset, apex = synthetic_pairs(6)
    log: list = []
    pretrainer(epochs=2, batch_size=3, micro_sources=[], macro_source="none", preview=0).fit(
        build_model(tiny_model_cfg(), 2, 32), fold_of(onset, apex), ctx_for(tmp_path, log))
    assert len(steps) == 4
    losses = [v for k, v, _ in log if k == "pretrain/loss"]
    assert len(losses) == 2 and all(v > 0 for v in losses)
