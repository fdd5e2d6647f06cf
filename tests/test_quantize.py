"""Quantization: exact round trips of what is stored, straight-through gradients."""

import pytest
import torch

from nerfstudio_trim.core.quantize import (
    dequantize_sh,
    fake_quantize_gaussians,
    quantize_gaussians,
    quantize_positions,
    quantize_sh,
)


def random_params(n: int, k: int = 15, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "means": torch.randn(n, 3, generator=generator) * 3,
        "scales": torch.randn(n, 3, generator=generator) - 4,
        "quats": torch.randn(n, 4, generator=generator),
        "opacities": torch.randn(n, 1, generator=generator) * 2,
        "features_dc": torch.randn(n, 3, generator=generator),
        "features_rest": torch.randn(n, k, 3, generator=generator) * torch.logspace(-2, -0.5, k)[None, :, None],
    }


@pytest.mark.parametrize("per", ["channel", "tensor"])
def test_quantized_sh_is_within_half_a_step(per):
    values = torch.randn(500, 16, 3) * torch.linspace(0.01, 2.0, 16)[None, :, None]
    q = quantize_sh(values, per)
    assert q.codes.dtype == torch.uint8
    assert torch.equal(q.dequantize(), dequantize_sh(q.codes, q.scale, q.offset))
    assert float((q.dequantize() - values).abs().max()) <= float(q.scale.max()) / 2 + 1e-6


@pytest.mark.parametrize("bits", [1, 4, 5, 8])
def test_fewer_bits_use_fewer_levels_over_the_same_range(bits):
    values = torch.randn(400, 15, 3)
    q = quantize_sh(values, bits=bits)
    assert int(q.codes.max()) == 2**bits - 1 and int(q.codes.min()) == 0
    torch.testing.assert_close(q.scale * (2**bits - 1), values.amax(0) - values.amin(0))
    assert float((q.dequantize() - values).abs().max()) <= float(q.scale.max()) / 2 + 1e-5
    with pytest.raises(ValueError):
        quantize_sh(values, bits=9)


def test_per_channel_is_finer_than_per_tensor_on_mixed_ranges():
    values = torch.randn(2000, 15, 3) * torch.logspace(-2, 0, 15)[None, :, None]
    error = {per: float((quantize_sh(values, per).dequantize() - values).pow(2).mean()) for per in ("channel", "tensor")}
    assert error["channel"] < error["tensor"] / 4


def test_constant_and_empty_channels():
    values = torch.randn(100, 4, 3)
    values[:, 2, :] = 0.37  # constant channel: scale 0, exact
    assert torch.equal(quantize_sh(values).dequantize()[:, 2, :], values[:, 2, :])
    empty = quantize_sh(torch.zeros(0, 4, 3))
    assert empty.codes.shape == (0, 4, 3) and torch.isfinite(empty.scale).all()
    no_bands = quantize_sh(torch.zeros(7, 0, 3), "tensor")  # SH degree 0: features_rest [N, 0, 3]
    assert no_bands.codes.shape == (7, 0, 3)


def test_grid_positions_are_within_half_a_step_and_hit_the_box_corners():
    points = torch.rand(1000, 3) * torch.tensor([10.0, 1.0, 0.1]) - 2
    q = quantize_positions(points, "grid16")
    assert int(q.codes.min()) == 0 and int(q.codes.max()) == 65535
    assert torch.all((q.dequantize() - points).abs() <= q.step / 2 + 1e-6)
    flat = points.clone()
    flat[:, 2] = 0.5  # a constant axis decodes exactly
    assert torch.equal(quantize_positions(flat, "grid16").dequantize()[:, 2], flat[:, 2])
    assert torch.equal(quantize_positions(points, "float16").dequantize(), points.half().float())


@pytest.mark.parametrize("sh, positions", [("channel", "float16"), ("tensor", "grid16")])
def test_qat_forward_is_exactly_the_decoded_file_and_gradients_pass_straight_through(sh, positions):
    params = {name: value.requires_grad_() for name, value in random_params(300).items()}
    rendered = fake_quantize_gaussians(params, sh, positions)
    decoded = quantize_gaussians(params, sh, positions).dequantize()
    for name, value in params.items():
        assert rendered[name].shape == value.shape and rendered[name].dtype == value.dtype
        assert torch.equal(rendered[name], decoded[name].reshape(value.shape))
        assert not torch.equal(rendered[name], value.detach())  # something was rounded
    weights = {name: torch.randn_like(value) for name, value in params.items()}
    sum((rendered[name] * weights[name]).sum() for name in params).backward()
    for name, value in params.items():
        assert torch.equal(value.grad, weights[name])


def test_float16_parameters_round_as_half():
    params = random_params(100)
    decoded = quantize_gaussians(params).dequantize()
    for name in ("means", "scales", "quats", "opacities"):
        assert torch.equal(decoded[name], params[name].half().float())
