"""CBAM blocks of mercore.nn.attention against outputs computed by hand."""
import math

import pytest
import torch

from mercore.nn.attention import CBAM, ChannelAttention, SpatialAttention


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_shapes():
    x = torch.randn(2, 32, 9, 7)
    assert ChannelAttention(32, 8).weights(x).shape == (2, 32, 1, 1)
    assert SpatialAttention(7).weights(x).shape == (2, 1, 9, 7)
    for module in (ChannelAttention(32, 8), SpatialAttention(3), CBAM(32, 8, 7)):
        assert module(x).shape == x.shape


def test_channel_attention_by_hand():
    # 2 channels, hidden width 1 (r = 2), no bias; second layer weights 1: out_c = hidden
    ca = ChannelAttention(2, reduction=2)
    with torch.no_grad():
        ca.mlp[0].weight.fill_(1.0)
        ca.mlp[2].weight.fill_(1.0)
    x = torch.tensor([[[[1.0, 3.0]], [[-2.0, 0.0]]]])  # (1, 2, 1, 2): avg (2, -1), max (3, 0)
    # MLP(avg) = relu(2 - 1) = 1, MLP(max) = relu(3 + 0) = 3 -> sigmoid(1 + 3) for both channels
    w = sigmoid(4.0)
    torch.testing.assert_close(ca.weights(x).flatten(), torch.tensor([w, w]))
    torch.testing.assert_close(ca(x), x * w)

    # first layer weights (1, -1): CBAM's order and eq. 13's literal order now differ
    literal = ChannelAttention(2, reduction=2, merge="before_mlp")
    with torch.no_grad():
        for m in (ca, literal):
            m.mlp[0].weight.copy_(torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
            m.mlp[2].weight.fill_(1.0)
    x = torch.tensor([[[[3.0, 3.0]], [[-6.0, 6.0]]]])  # avg (3, 0), max (3, 6)
    # after_mlp: relu(3 - 0) + relu(3 - 6) = 3 ; before_mlp: relu((3 + 3) - (0 + 6)) = 0
    torch.testing.assert_close(ca.weights(x).flatten(), torch.full((2,), sigmoid(3.0)))
    torch.testing.assert_close(literal.weights(x).flatten(), torch.full((2,), 0.5))
    x = torch.tensor([[[[1.0, 3.0]], [[-2.0, 0.0]]]])  # avg (2, -1), max (3, 0)
    # after_mlp: relu(2 + 1) + relu(3 - 0) = 6 ; before_mlp: relu(5 + 1) = 6
    torch.testing.assert_close(ca.weights(x).flatten(), torch.full((2,), sigmoid(6.0)))
    torch.testing.assert_close(literal.weights(x).flatten(), torch.full((2,), sigmoid(6.0)))


def test_channel_attention_zero_mlp_is_half():
    ca = ChannelAttention(16, reduction=4)
    with torch.no_grad():
        for p in ca.parameters():
            p.zero_()
    x = torch.randn(3, 16, 5, 5)
    torch.testing.assert_close(ca(x), 0.5 * x)
    assert sum(p.numel() for p in ca.parameters()) == 2 * 16 * 4  # C -> C/r -> C, no bias


def test_spatial_attention_by_hand():
    sa = SpatialAttention(kernel_size=1)  # 1x1 conv: w_mean * mean_c + w_max * max_c
    with torch.no_grad():
        sa.conv.weight.copy_(torch.tensor([[[[1.0]], [[2.0]]]]))
    x = torch.tensor([[[[1.0, -1.0]], [[3.0, 0.0]]]])  # (1, 2, 1, 2)
    # pixel 0: mean 2, max 3 -> 2 + 6 = 8 ; pixel 1: mean -0.5, max 0 -> -0.5
    expect = torch.tensor([sigmoid(8.0), sigmoid(-0.5)]).view(1, 1, 1, 2)
    torch.testing.assert_close(sa.weights(x), expect)
    torch.testing.assert_close(sa(x), x * expect)


def test_spatial_attention_kernel_sums_neighbourhood():
    sa = SpatialAttention(kernel_size=3)
    with torch.no_grad():
        sa.conv.weight.zero_()
        sa.conv.weight[0, 0].fill_(1.0)  # sum of the channel-mean over the 3x3 neighbourhood
    x = torch.ones(1, 4, 5, 5)
    w = sa.weights(x)[0, 0]
    assert w[2, 2].item() == pytest.approx(sigmoid(9.0))  # interior: 9 ones
    assert w[0, 0].item() == pytest.approx(sigmoid(4.0))  # corner: zero padding leaves 4
    assert w[0, 2].item() == pytest.approx(sigmoid(6.0))  # edge: 6


def test_cbam_is_ca_then_sa_and_switches():
    torch.manual_seed(0)
    block = CBAM(8, reduction=2, kernel_size=3)
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(x), block.sa(block.ca(x)))
    assert isinstance(CBAM(8, 2, channel=False).ca, torch.nn.Identity)
    assert isinstance(CBAM(8, 2, spatial=False).sa, torch.nn.Identity)
    off = CBAM(8, 2, channel=False, spatial=False)
    assert not list(off.parameters())
    torch.testing.assert_close(off(x), x)


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        SpatialAttention(4)
    with pytest.raises(ValueError, match="merge"):
        ChannelAttention(8, merge="sum")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ChannelAttention(8).weights(torch.randn(8, 4))
