"""Quantization: exact round trips of what is stored, straight-through gradients."""

import pytest
import torch

from nerfstudio_trim.core.quantize import dequantize_sh, fake_float16, fake_quantize_sh, quantize_sh


@pytest.mark.parametrize("per", ["channel", "tensor"])
def test_fake_quantized_forward_equals_dequantized_codes(per):
    values = torch.randn(500, 16, 3) * torch.linspace(0.01, 2.0, 16)[None, :, None]
    q = quantize_sh(values, per)
    assert q.codes.dtype == torch.uint8
    assert torch.equal(fake_quantize_sh(values, per), dequantize_sh(q.codes, q.scale, q.offset))
    step = q.scale.max()
    assert float((fake_quantize_sh(values, per) - values).abs().max()) <= float(step) / 2 + 1e-6


def test_per_channel_is_finer_than_per_tensor_on_mixed_ranges():
    values = torch.randn(2000, 15, 3) * torch.logspace(-2, 0, 15)[None, :, None]
    error = {per: float((fake_quantize_sh(values, per) - values).pow(2).mean()) for per in ("channel", "tensor")}
    assert error["channel"] < error["tensor"] / 4


def test_constant_and_empty_channels():
    values = torch.randn(100, 4, 3)
    values[:, 2, :] = 0.37  # constant channel: scale 0, exact
    assert torch.equal(fake_quantize_sh(values)[:, 2, :], values[:, 2, :])
    empty = quantize_sh(torch.zeros(0, 4, 3))
    assert empty.codes.shape == (0, 4, 3) and torch.isfinite(empty.scale).all()


def test_gradients_pass_straight_through():
    values = torch.randn(50, 4, 3, requires_grad=True)
    weights = torch.randn(50, 4, 3)
    (fake_quantize_sh(values) * weights).sum().backward()
    assert torch.equal(values.grad, weights)
    x = torch.randn(100, 3, requires_grad=True)
    y = fake_float16(x)
    assert torch.equal(y, x.detach().half().float())
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
