"""RepConv: training form vs its fused single-conv inference form."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mercore.nn.rep import RepConv, fuse_conv_bn, reparameterize

torch.set_num_threads(1)


def randomise_bn(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so fusing them is actually tested."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


@pytest.mark.parametrize("identity,stride,c_in,c_out", [(False, 1, 4, 6), (True, 1, 5, 5), (False, 2, 4, 8)])
def test_fused_conv_equals_training_form(identity, stride, c_in, c_out):
    torch.manual_seed(0)
    block = RepConv(c_in, c_out, stride=stride, identity=identity)
    randomise_bn(block)
    block.eval()
    x = torch.randn(2, c_in, 9, 9)
    with torch.no_grad():
        y = block(x)
        block.reparameterize()
        assert block.is_fused and isinstance(block.fused, nn.Conv2d) and block.fused.kernel_size == (3, 3)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())  # branches gone
        torch.testing.assert_close(block(x), y, atol=1e-5, rtol=1e-5)
    assert y.shape == (2, c_out, (9 - 1) // stride + 1, (9 - 1) // stride + 1)


def test_branches_are_all_used():
    """Each branch contributes: zeroing one changes the output (so the fusion test is not vacuous)."""
    torch.manual_seed(1)
    block = RepConv(3, 3, identity=True, act=nn.Identity())
    randomise_bn(block, 1)
    block.eval()
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        full = block(x)
        expect = block.bn3(block.conv3(x)) + block.bn1(block.conv1(x)) + block.bn_id(x)
        torch.testing.assert_close(full, expect)
        for part in (block.bn1, block.bn_id):
            saved = part.weight.clone(), part.bias.clone()
            part.weight.zero_()
            part.bias.zero_()
            assert not torch.allclose(block(x), full)
            part.weight.copy_(saved[0])
            part.bias.copy_(saved[1])


def test_reparameterize_walks_a_model_and_is_idempotent():
    torch.manual_seed(2)
    model = nn.Sequential(RepConv(3, 8), RepConv(8, 8, identity=True), RepConv(8, 4, stride=2))
    randomise_bn(model, 2)
    model.eval()
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        y = model(x)
        reparameterize(model)
        reparameterize(model)  # second call: nothing left to fuse
        assert all(m.is_fused for m in model)
        torch.testing.assert_close(model(x), y, atol=1e-5, rtol=1e-5)
    n_fused = sum(p.numel() for p in model.parameters())
    assert n_fused == (8 * 3 * 9 + 8) + (8 * 8 * 9 + 8) + (4 * 8 * 9 + 4)


def test_fuse_conv_bn_matches_module():
    torch.manual_seed(3)
    conv, bn = nn.Conv2d(3, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4)
    randomise_bn(bn, 3)
    bn.eval()
    k, b = fuse_conv_bn(conv.weight, bn, conv.bias)
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(nn.functional.conv2d(x, k, b, padding=1), bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_identity_needs_matching_shape():
    with pytest.raises(ValueError):
        RepConv(4, 8, identity=True)
    with pytest.raises(ValueError):
        RepConv(4, 4, stride=2, identity=True)
