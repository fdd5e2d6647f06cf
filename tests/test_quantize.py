"""Format 2.0's quantizers: what is stored is within its step, the model renders exactly what is stored."""

import math

import pytest
import torch

from nerfstudio_trim.core.quantize.gaussians import CodecSettings, fake_quantize_gaussians, quantize_gaussians
from nerfstudio_trim.core.quantize.positions import MAX_LEVEL, levels_of, quantize_positions
from nerfstudio_trim.core.quantize.rotations import SmallestThree, quantize_rotations
from nerfstudio_trim.core.quantize.sh_bands import largest_code, quantize_bands
from nerfstudio_trim.core.quantize.uniform import channel_range, quantize_levels, quantize_step


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


@pytest.mark.parametrize("bits", [1, 4, 8, 12])
def test_levels_are_within_half_a_step_and_span_the_range(bits):
    values = torch.randn(1000, 3) * torch.tensor([0.1, 1.0, 10.0])
    low, high = channel_range(values)
    q = quantize_levels(values, bits, low, high)
    assert q.bits == bits and int(q.codes.min()) == 0 and int(q.codes.max()) == 2**bits - 1
    assert bool(((q.dequantize() - values).abs() <= q.step / 2 * (1 + 1e-5) + 1e-6).all())
    assert q.dequantize().dtype == torch.float32


def test_a_constant_channel_decodes_exactly_and_empty_input_works():
    values = torch.randn(50, 2)
    values[:, 1] = 0.37
    q = quantize_levels(values, 6, *channel_range(values))
    assert torch.equal(q.dequantize()[:, 1], values[:, 1])
    empty = quantize_levels(torch.zeros(0, 3), 6, *channel_range(torch.zeros(0, 3)))
    assert empty.codes.shape == (0, 3) and empty.dequantize().shape == (0, 3)


def test_infinite_opacities_from_other_tools_are_clamped_not_refused():
    logits = torch.tensor([[float("inf")], [float("-inf")], [0.5]])
    q = quantize_gaussians({**random_params(3), "opacities": logits})
    decoded = q.opacities.dequantize()
    assert torch.isfinite(decoded).all() and float(decoded[0]) > 11.9 and float(decoded[1]) < -11.9


def test_fixed_step_grid():
    values = torch.randn(400, 3) - 4
    q = quantize_step(values, 0.05, values.amin().reshape(1))
    assert bool(((q.dequantize() - values).abs() <= 0.025 + 1e-6).all())


def rotation_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
    return 2 * torch.acos((a * b).sum(-1).abs().clamp(max=1))


@pytest.mark.parametrize("bits", [6, 7, 9])
def test_smallest_three_rotations_are_close_and_sign_free(bits):
    quats = torch.randn(5000, 4, generator=torch.Generator().manual_seed(1))
    q = quantize_rotations(quats, bits)
    decoded = q.dequantize()
    assert torch.allclose(decoded.norm(dim=-1), torch.ones(5000), atol=1e-6)
    # each stored component errs by at most half a step of the [-1/sqrt2, 1/sqrt2] range
    component_error = math.sqrt(2) / (2**bits - 1) / 2
    assert float(rotation_angle(decoded, quats).max()) < 8 * component_error
    flipped = quantize_rotations(-quats, bits)
    assert torch.equal(flipped.codes, q.codes) and torch.equal(flipped.largest, q.largest)
    assert torch.equal(q.largest, torch.nn.functional.normalize(quats, dim=-1).abs().argmax(-1))


def test_identity_rotation_is_exact_in_its_largest_component():
    q = quantize_rotations(torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, -3.0, 0.0]]), 8)
    decoded = q.dequantize()
    assert q.largest.tolist() == [0, 2] and float(rotation_angle(decoded, torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0]])).max()) < 0.01


def test_the_largest_rotation_component_is_the_correctly_rounded_square_root():
    """Every 7-bit code triple decodes as docs/format.md says, each float32 operation correctly rounded: numpy's
    float32 arithmetic is the reference (torch's float32 sqrt on the CPU is sometimes one unit off)."""
    import numpy as np

    grid = torch.cartesian_prod(*[torch.arange(128)] * 3)
    decoded = SmallestThree(torch.zeros(grid.shape[0], dtype=torch.int64), grid, 7).dequantize()
    v = (grid.numpy().astype(np.float32) * np.float32(2 / 127) - np.float32(1)) * np.float32(1 / math.sqrt(2))
    squares = (v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) + v[:, 2] * v[:, 2]
    expected = np.sqrt(np.maximum(np.float32(0), np.float32(1) - squares))
    assert expected.dtype == np.float32 and np.array_equal(decoded[:, 0].numpy(), expected)
    assert np.array_equal(decoded[:, 1:].numpy(), v)
    one = SmallestThree(torch.tensor([2]), torch.tensor([[72, 40, 23]]), 7).dequantize()
    assert one[0, 2].item() == 0.8480392098426819  # sqrt(0.71917045...) = 0.84803918..., nearer this float32 than 0.84803915


def test_positions_err_at_most_half_the_precision_of_each_gaussians_size_anywhere():
    params = random_params(3000, seed=2)
    scales = quantize_step(params["scales"], 0.05, params["scales"].amin().reshape(1))
    sizes = torch.exp(scales.dequantize().mean(-1))
    for offset in (0.0, 420.0):  # a scene centred on the origin, and one 420 units away
        means = params["means"] + offset
        q = quantize_positions(means, scales, precision=0.1)
        error = (q.dequantize() - means).abs().amax(-1)
        resolved = sizes >= sizes.kthvalue(int(0.01 * 3000) + 1).values  # the finest grid serves the smallest 1%
        # the level's integer formula matches the ideal step within rounding of its coefficients (a few %)
        assert bool((error[resolved] <= 0.1 * sizes[resolved] / 2 * 1.06 + 1e-6).all())
        assert float(error.max()) <= q.base_step * 2 ** float(q.levels.max()) / 2 * 1.001
        assert bool(((q.coordinates % (2**q.levels[:, None])) == 0).all())
    float16_error = ((means.half().float() - means).abs().amax(-1) / sizes).median()
    assert float16_error > 1.0  # what float16 positions would err there, relative to the Gaussians' sizes


def test_position_levels_follow_the_size_in_integer_arithmetic():
    codes = torch.tensor([[0, 0, 0], [10, 10, 10], [100, 100, 100], [300, 300, 300]])
    levels = levels_of(codes, level_offset=30, level_divisor=42)
    assert levels.tolist() == [0, 0, (300 - 30) // 42, min(MAX_LEVEL, (900 - 30) // 42)]


def test_sh_bands_keep_zeros_exact_and_give_a_degree_per_gaussian():
    rest = torch.randn(6, 15, 3) * 0.1
    rest[0] = 0.0  # degree 0
    rest[1, 3:] = 0.0  # degree 1
    rest[2, 8:] = 0.0  # degree 2
    rest[3, 0:3] = 0.0  # degree 3 with a zero first band
    q = quantize_bands(rest, (6, 5, 4))
    assert q.degrees.tolist()[:4] == [0, 1, 2, 3]
    decoded = q.dequantize()
    assert torch.equal(decoded[0], torch.zeros(15, 3)) and torch.equal(decoded[1, 3:], torch.zeros(12, 3))
    for (start, end), bits in zip([(0, 3), (3, 8), (8, 15)], (6, 5, 4)):
        step = q.steps[start:end]
        assert bool(((decoded[:, start:end] - rest[:, start:end]).abs() <= step / 2 * (1 + 1e-5) + 1e-7).all())
        assert int(q.codes[:, start:end].abs().max()) <= largest_code(bits)
    assert torch.equal(quantize_bands(rest, (6, 5, 1)).dequantize()[:, 8:], torch.zeros(6, 7, 3))  # 1 bit: dropped


def test_fake_quantization_renders_exactly_what_is_stored_with_straight_through_gradients():
    params = {name: value.clone().requires_grad_(True) for name, value in random_params(500, seed=3).items()}
    settings = CodecSettings(sh_bits=(6, 5, 4), rotation_bits=8)
    rendered = fake_quantize_gaussians(params, settings)
    decoded = quantize_gaussians(params, settings).dequantize()
    for name, value in params.items():
        assert torch.equal(rendered[name].detach(), decoded[name].reshape(value.shape)), name
        assert rendered[name].dtype == value.dtype
    sum(v.sum() for name, v in rendered.items() if name != "quats").backward()
    assert all(torch.equal(p.grad, torch.ones_like(p)) for name, p in params.items() if name != "quats")


def test_rotations_get_the_gradient_of_the_parameter_not_of_its_stored_sign():
    """The file stores q or -q (largest component positive) at norm 1; the gradient that reaches the quaternion
    parameter is the one a renderer of the parameter itself would give, sign and norm included."""
    from nerfstudio_trim.core.raster.projection import quat_to_rotmat

    generator = torch.Generator().manual_seed(4)
    quats = torch.randn(3000, 4, generator=generator) * 2  # half with a negative largest component, norms 0-5
    target = torch.randn(3000, 3, 3, generator=generator)

    def gradient(render):
        parameter = quats.clone().requires_grad_(True)
        params = {**random_params(3000, seed=5), "quats": parameter}
        (quat_to_rotmat(render(params)) * target).sum().backward()
        return parameter.grad

    exact = gradient(lambda params: params["quats"])
    trained = gradient(lambda params: fake_quantize_gaussians(params, CodecSettings(rotation_bits=16))["quats"])
    torch.testing.assert_close(trained, exact, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("bad", [dict(position_precision=0), dict(scale_step=-1), dict(rotation_bits=1),
                                 dict(opacity_bits=17), dict(sh_bits=(5, 4)), dict(sh_bits=(9, 4, 4))])  # fmt: skip
def test_settings_no_file_can_hold_are_refused(bad):
    with pytest.raises(ValueError):
        CodecSettings(**bad).validate()
    CodecSettings().validate()
