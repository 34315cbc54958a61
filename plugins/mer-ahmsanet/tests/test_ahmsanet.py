"""AHMSA-Net plugin: level shapes, attention modules on hand-checked inputs, ablation switches,
config and registration, a short LOSO run."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import mer_ahmsanet.plugin
from mer_ahmsanet.model import (AdaptiveDownsampling, AHMSANetConfig, ChannelLayerNorm, MultiScaleAttentionBlock,
                                PatchSpatialAttention, build_model, count_parameters)
from mer_ahmsanet.plugin import AHMSANet
from mercore import FeatureRequest, SupervisedTrainer
from mercore.nn.attention import ChannelAttention
from mercore.config import ConfigError
from mercore.runner import check_method

torch.set_num_threads(1)
SMALL = {"dim": 8, "heads": 2}  # narrow widths keep the tests fast; the structure is the paper's


def model_cfg(**overrides) -> dict:
    cfg = copy.deepcopy(AHMSANet().default_config()["model"])
    cfg.update(SMALL)
    cfg.update(overrides)
    return cfg


def flow(b: int = 2, size: int = 28) -> dict[str, torch.Tensor]:
    return {"flow": torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(0))}


# --- shapes --------------------------------------------------------------------------------------

def test_levels_hold_16_then_4_then_1_patches():
    model = build_model(model_cfg(), 3)
    outs = model.features(flow()["flow"])
    assert [tuple(o.shape) for o in outs] == [(2, 8, 4, 4), (2, 16, 2, 2), (2, 32, 1, 1)]
    assert [o.shape[-1] * o.shape[-2] for o in outs] == [16, 4, 1]
    assert model(flow()).shape == (2, 3) and model.out_features == 32
    assert [len(level.blocks) for level in model.levels] == [2, 2, 8]
    assert len(model.downsamples) == 2


def test_default_model_is_htnet_width():
    cfg = AHMSANetConfig.from_config(AHMSANet().default_config()["model"])
    assert (cfg.image_size, cfg.patch_size, cfg.levels, cfg.downsample, cfg.depths) == (28, 7, 3, 2, (2, 2, 8))
    assert cfg.level_dims() == [256, 512, 1024] and cfg.level_heads() == [3, 6, 12] and cfg.grid_sizes() == [4, 2, 1]
    model = build_model(cfg, 3)
    n = count_parameters(model)
    print(f"AHMSA-Net default parameters: {n:,}")
    assert 100e6 < n < 130e6  # the top level (8 blocks at width 1024) dominates, as in HTNet


def test_patch_embedding_sees_one_7x7_patch_per_token():
    model = build_model(model_cfg(pos_embedding=False), 3)
    x = torch.zeros(1, 3, 28, 28)
    y = x.clone()
    y[:, :, 7:14, 14:21] = 1.0  # patch (row 1, col 2)
    diff = (model.patch_embed(y) - model.patch_embed(x)).abs().sum(1)[0]  # (4, 4)
    assert diff[1, 2] > 0 and (diff.flatten().nonzero().flatten() == torch.tensor([1 * 4 + 2])).all()


# --- attention modules on hand-checked inputs ------------------------------------------------------

def test_channel_attention_on_constant_input_gives_hand_computed_scale():
    c, r = 4, 2
    block = MultiScaleAttentionBlock(c, heads=1, mlp_ratio=1, reduction=r)
    ca = block.channel
    assert isinstance(ca, ChannelAttention)
    with torch.no_grad():
        ca.mlp[0].weight.fill_(0.5)  # (2, 4, 1, 1): hidden = 0.5 * sum of the 4 channels
        ca.mlp[2].weight.fill_(-1.0)  # (4, 2, 1, 1): out = -(h1 + h2)
    x = torch.full((1, c, 3, 3), 2.0)
    # avg = max = 2 per channel -> hidden = relu(0.5 * 8) = 4 each -> out = -8; sum of both branches = -16
    expected_scale = 1 / (1 + math.exp(16.0))
    torch.testing.assert_close(ca.weights(x), torch.full((1, c, 1, 1), expected_scale))
    torch.testing.assert_close(ca(x), x * expected_scale)
    # negative input: the ReLU cuts the hidden layer, the scale is sigmoid(0) = 0.5
    torch.testing.assert_close(ca(-x), -x * 0.5)


def test_spatial_attention_single_head_is_softmax_qkt_v():
    dim, n = 4, 3
    sa = PatchSpatialAttention(dim, heads=1)
    torch.manual_seed(0)
    wq, wk, wv = (torch.randn(dim, dim) for _ in range(3))
    with torch.no_grad():
        sa.to_qkv.weight.copy_(torch.cat([wq, wk, wv]).view(3 * dim, dim, 1, 1))
        sa.proj.weight.copy_(torch.eye(dim).view(dim, dim, 1, 1))
        sa.proj.bias.zero_()
    x = torch.randn(1, dim, 1, n)  # three patches in a row
    tokens = x[0, :, 0].T  # (N, dim)
    q, k, v = tokens @ wq.T, tokens @ wk.T, tokens @ wv.T
    scores = q @ k.T / math.sqrt(dim)
    attn = torch.exp(scores) / torch.exp(scores).sum(-1, keepdim=True)  # softmax by hand
    expected = (attn @ v).T.reshape(1, dim, 1, n)
    torch.testing.assert_close(sa(x), expected)
    torch.testing.assert_close(sa.attention(x)[0, 0], attn)


def test_spatial_attention_heads_are_independent_and_concatenated():
    dim = 4
    sa = PatchSpatialAttention(dim, heads=2)
    with torch.no_grad():
        sa.to_qkv.weight.copy_(torch.cat([torch.zeros(dim, dim), torch.zeros(dim, dim), torch.eye(dim)]).view(3 * dim, dim, 1, 1))
        sa.proj.weight.copy_(torch.eye(dim).view(dim, dim, 1, 1))
        sa.proj.bias.zero_()
    x = torch.randn(2, dim, 2, 2)
    # Q = K = 0: uniform attention, so every patch receives the mean of V = x over the patches
    torch.testing.assert_close(sa(x), x.mean((2, 3), keepdim=True).expand_as(x))
    assert sa.attention(x).shape == (2, 2, 4, 4)


def test_block_is_three_prenorm_residual_steps():
    torch.manual_seed(0)
    block = MultiScaleAttentionBlock(8, heads=2, mlp_ratio=2, reduction=4).eval()
    x = torch.randn(2, 8, 2, 2)
    with torch.no_grad():
        h = x + block.channel(block.norm_ca(x))
        h = h + block.spatial(block.norm_sa(h))
        expect = h + block.ff(block.norm_ff(h))
        torch.testing.assert_close(block(x), expect)


def test_channel_layernorm_is_eq_3_per_patch():
    ln = ChannelLayerNorm(3)
    with torch.no_grad():
        ln.gamma.copy_(torch.tensor([1.0, 2.0, 3.0]))
        ln.beta.copy_(torch.tensor([0.0, 1.0, -1.0]))
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1).repeat(1, 1, 2, 2)
    z = torch.tensor([-1.0, 0.0, 1.0]) / math.sqrt(2 / 3 + 1e-5)  # (x - 2) / sqrt(var + eps)
    torch.testing.assert_close(ln(x)[0, :, 1, 0], z * torch.tensor([1.0, 2.0, 3.0]) + torch.tensor([0.0, 1.0, -1.0]))


def test_adaptive_downsampling_is_conv_layernorm_maxpool():
    down = AdaptiveDownsampling(4, 8, out_side=2)
    x = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        y = down.norm(down.conv(x))
        torch.testing.assert_close(down(x), nn.functional.max_pool2d(y, 2))
    assert down(x).shape == (1, 8, 2, 2)


# --- ablation switches ---------------------------------------------------------------------------

@pytest.mark.parametrize("depths", [[1, 1, 8], [3, 3, 8], [8, 8, 8]])
def test_depths_change_the_block_counts(depths):
    model = build_model(model_cfg(depths=depths), 3)
    assert [len(level.blocks) for level in model.levels] == depths
    assert model(flow()).shape == (2, 3)
    more = count_parameters(model) - count_parameters(build_model(model_cfg(), 3))
    assert (more > 0) == (sum(depths) > 12) and (more < 0) == (sum(depths) < 12)


def test_levels_and_downsampling_factor_change_the_hierarchy():
    two = build_model(model_cfg(levels=2, depths=[2, 8], image_size=14), 3)  # 2x2 -> 1 patch
    assert [o.shape[-1] for o in two.features(torch.rand(1, 3, 14, 14))] == [2, 1] and len(two.downsamples) == 1
    four = build_model(model_cfg(levels=4, depths=[1, 1, 1, 1], image_size=56), 3)  # 64 -> 16 -> 4 -> 1
    assert [o.shape[-1] ** 2 for o in four.features(torch.rand(1, 3, 56, 56))] == [64, 16, 4, 1]
    three = build_model(model_cfg(downsample=3, image_size=63), 3)  # Section 4.5.2: factor 3 -> 81 patches
    assert [o.shape[-1] ** 2 for o in three.features(torch.rand(1, 3, 63, 63))] == [81, 9, 1]
    assert three(flow(1, 63)).shape == (1, 3)


def test_inconsistent_structure_is_an_error():
    for bad in (dict(levels=3, depths=[2, 8]), dict(downsample=3), dict(levels=4, depths=[1, 1, 1, 1]),
                dict(image_size=30), dict(depths=[0, 2, 8]), dict(colour="red"), dict(downsample=1)):
        with pytest.raises(ValueError):
            build_model(model_cfg(**bad), 3)
    with pytest.raises(ValueError, match="expects"):
        build_model(model_cfg(), 3)(flow(1, 32))


def test_position_embedding_switch():
    with_pos, without = build_model(model_cfg(), 3), build_model(model_cfg(pos_embedding=False), 3)
    assert count_parameters(with_pos) - count_parameters(without) == 8 * 16 + 16 * 4 + 32 * 1


# --- method, config and registration ---------------------------------------------------------------

def test_config_is_the_papers_table_3():
    method = AHMSANet()
    cfg = method.default_config()
    assert "profiles" not in cfg and set(cfg["variants"]) == set(method.variants)
    stage, = method.stages(cfg)
    assert isinstance(stage, SupervisedTrainer)
    assert (stage.optimizer, stage.lr, stage.batch_size, stage.epochs) == ("adam", 5e-6, 256, 800)
    assert stage.early_stopping.patience is None and cfg["validation"]["subjects"] == 0.0
    assert cfg["model"]["depths"] == [2, 2, 8] and cfg["model"]["levels"] == 3 and cfg["model"]["downsample"] == 2
    quick = method.profiles()["quick"]
    assert quick["train"]["lr"] > cfg["train"]["lr"] and quick["train"]["epochs"] < cfg["train"]["epochs"]


def test_features_follow_variants():
    from mercore.config import resolve_config

    method = AHMSANet()
    req = method.features(resolve_config(method))["flow"]
    assert req == FeatureRequest("roi_flow", {"layout": "ahmsa5", "landmarks": "auto", "source": "clips",
                                              "source_size": 128, "size": 28, "backend": "tvl1", "align": "none"})
    aligned = method.features(resolve_config(method, sets=["features.align=dlib"]))["flow"]
    assert aligned.params["align"] == "dlib" and aligned.params["landmarks"] == "auto"  # -> dlib landmarks (roi_flow)
    on_release = method.features(resolve_config(method, inputs="flow-release"))["flow"]
    assert on_release.params["source"] == "release" and on_release.params["source_size"] == 28
    assert "align" not in on_release.params  # a release's maps are already cropped
    assert method.features(resolve_config(method, variant="whole-face"))["flow"] == FeatureRequest(
        "flow_uvs", {"size": 28, "backend": "tvl1", "normalize": "minmax", "align": "none"})
    assert method.features(resolve_config(method, variant="whole-face", inputs="flow-release"))["flow"] == (
        FeatureRequest("release_flow", {"size": 28}))
    cfg = resolve_config(method, sets=["features.stream=optical_flow"])
    with pytest.raises(ConfigError, match="'features.stream': 'optical_flow' is not allowed; expected one of roi_flow"):
        check_method(method, cfg, 3)
    cfg = resolve_config(method, sets=["features.roi_flow.size=32"])
    with pytest.raises(ConfigError, match="features.roi_flow.size 32 differs from model.image_size 28"):
        check_method(method, cfg, 3)


def test_the_sections_are_declared_typed_and_checked_before_any_work():
    """config_class: the core checks AHMSA-Net's sections against it once; features and model read typed values."""
    from mer_ahmsanet.model import AHMSANetSettings

    from mercore.config import resolve_config

    method = AHMSANet()
    cfg = resolve_config(method, profile="quick", inputs="flow-release", sets=["model.dropout=0.25"])
    settings = method.settings(cfg)
    assert isinstance(settings, AHMSANetSettings) and isinstance(settings.model, AHMSANetConfig)
    assert settings.model.dim == 32 and settings.model.dropout == 0.25 and settings.features.stream == "roi_flow"
    assert isinstance(settings.train, SupervisedTrainer) and settings.train.epochs == cfg["train"]["epochs"] == 45
    with torch.device("meta"):
        assert method.build_model(cfg, 3).config == settings.model
    cfg["extras"] = {"x": 1}  # a section the class does not declare
    with pytest.raises(ConfigError, match=r"unknown config section\(s\) \['extras'\]"):
        check_method(method, cfg, 3)


def test_registers_through_pluggy():
    from mercore.plugins import load_registry

    registry = load_registry(only=(), extra_plugins=[("ahmsanet", mer_ahmsanet.plugin)])
    assert registry.plugins["ahmsanet"].error is None
    method = registry.method("ahmsanet")
    assert isinstance(method, AHMSANet) and method.default_variant == "regions"
    assert set(method.inputs) == {"clips", "flow-release"}


# --- end to end ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_loso_beats_majority_baseline(tmp_path: Path):
    """Quick profile on a 5-subject synthetic corpus at 64x64 frames (regions cut from a 64x64 flow map).

    Spread (lock of 2026-12-02, seeds 0-4): UF1 0.597, 0.595, 0.433, 0.569, 0.716 against a
    baseline of 0.253, UAR 0.451-0.678 against 0.333: the lowest seed is 0.18 / 0.12 above."""
    from mercore.plugins import load_registry
    from mercore.runner import run
    from mercore.spec import ExecutionOptions, RunSpec

    registry = load_registry(only=(), extra_plugins=[("ahmsanet", mer_ahmsanet.plugin)])
    if "roi_flow" in registry.extractors:
        variant, sets = "regions", {"features.roi_flow.source_size": 64}
    else:  # until the core registers roi_flow: the whole-face map (see docs/methods/ahmsanet.md)
        variant, sets = "whole-face", {}
    result = run(RunSpec("ahmsanet", variant=variant, dataset="synthetic",
                         dataset_options={"subjects": 5, "clips_per_subject": 12, "size": 64}, profile="quick",
                         overrides=sets),
                 ExecutionOptions(cache_dir=tmp_path / "cache", progress=False, tracking=False), registry=registry)
    print(f"AHMSA-Net quick LOSO ({variant}):", result.metrics, "baseline:", result.baseline)
    assert result.metrics["uf1"] > result.baseline["uf1"]
    assert result.metrics["uar"] > result.baseline["uar"]
