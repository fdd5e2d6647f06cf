"""SH compaction: exact zeros above each Gaussian's degree, colours towards the cameras that see it kept within
the tolerance, Gaussians no camera sees reduced to their base colour."""

import math

import torch

from nerfstudio_trim.core.quantize.sh_compaction import ViewCameras, band_mask, compact_sh, view_directions
from nerfstudio_trim.core.raster.sh import sh_bases


def ring_of_cameras(count: int = 24, radius: float = 4.0) -> ViewCameras:
    """Cameras on a horizontal ring around the origin, looking at it (OpenCV axes: x right, y down, z forward)."""
    viewmats = []
    for index in range(count):
        angle = 2 * math.pi * index / count
        centre = torch.tensor([radius * math.cos(angle), radius * math.sin(angle), 0.3 * math.sin(3 * angle)])
        forward = -centre / centre.norm()
        right = torch.linalg.cross(forward, torch.tensor([0.0, 0.0, 1.0]))
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        rotation = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
        viewmat = torch.eye(4)
        viewmat[:3, :3], viewmat[:3, 3] = rotation, -rotation @ centre
        viewmats.append(viewmat)
    Ks = torch.tensor([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]]).repeat(count, 1, 1)
    return ViewCameras(torch.stack(viewmats), Ks, torch.full((count,), 128.0), torch.full((count,), 96.0))


def colours(dc, rest, directions):
    coefficients = torch.cat([dc[:, None], rest], dim=1).to(torch.float64)
    return sh_bases(3, directions.to(torch.float64)) @ coefficients


def test_compaction_keeps_the_seen_colours_within_tolerance_with_exact_zeros():
    generator = torch.Generator().manual_seed(0)
    count = 400
    means = torch.randn(count, 3, generator=generator) * 0.5
    dc = torch.randn(count, 3, generator=generator)
    scale = torch.tensor([0.0, 0.0005, 0.05, 0.3])[torch.randint(0, 4, (count,), generator=generator)]  # none to strong
    rest = torch.randn(count, 15, 3, generator=generator) * scale[:, None, None]
    means[0] = torch.tensor([0.0, 0.0, 50.0])  # above every camera's view: seen by none
    cameras = ring_of_cameras()
    tolerance = 1.0 / 255
    result = compact_sh(dc, rest, means, cameras, tolerance)
    directions, seen = view_directions(means, cameras)
    error = ((colours(result.features_dc, result.features_rest, directions) - colours(dc, rest, directions)).abs().amax(-1))
    assert float((error * seen).max()) <= tolerance + 1e-6
    assert torch.equal(result.features_rest * (1 - band_mask(result.degrees, 15)), torch.zeros_like(rest))  # exact zeros
    assert torch.equal(result.degrees[scale == 0], torch.zeros(int((scale == 0).sum()), dtype=torch.int64))
    assert int(result.degrees[0]) == 0 and not bool(seen[0].any())
    assert torch.equal(result.features_dc[0], dc[0])  # unseen: base colour kept, higher bands dropped
    strong = scale == 0.3
    assert float(result.degrees[strong].float().mean()) > 2.5  # strong view dependence is kept
    weak = scale == 0.0005
    assert float(result.degrees[weak].float().mean()) < 0.2  # barely visible view dependence is compacted away
    assert result.degrees.dtype == torch.int64 and result.features_rest.dtype == rest.dtype


def test_a_looser_tolerance_compacts_more():
    generator = torch.Generator().manual_seed(1)
    means = torch.randn(300, 3, generator=generator) * 0.5
    dc, rest = torch.randn(300, 3, generator=generator), torch.randn(300, 15, 3, generator=generator) * 0.02
    cameras = ring_of_cameras()
    tight, loose = (compact_sh(dc, rest, means, cameras, t).degrees.sum() for t in (0.5 / 255, 8.0 / 255))
    assert int(loose) < int(tight)


def test_band_mask_follows_the_degree():
    mask = band_mask(torch.tensor([0, 1, 2, 3]), 15)[..., 0]
    assert mask.sum(dim=1).tolist() == [0, 3, 8, 15]
    assert mask[1, :3].tolist() == [1, 1, 1] and mask[2, 3:8].tolist() == [1] * 5 and mask[2, 8:].sum() == 0
