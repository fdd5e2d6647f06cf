"""SH energy compaction: give each Gaussian the lowest SH degree that reproduces the colours it shows.

A Gaussian's view-dependent colour matters only towards the cameras that see it. For each Gaussian, the
colours its SH coefficients give towards the training cameras that have it in view are refitted with
degrees 0, 1, ... (least squares with a small ridge penalty on the higher bands, the base colour refitted
too); the lowest degree whose refit stays within ``tolerance`` of every one of those colours is kept, its
higher bands set exactly to zero (which costs almost nothing in the file: a Gaussian's bands above its
degree are not stored). A Gaussian no training camera sees keeps its base colour and loses its higher
bands. Colours here are SH values before gsplat's +0.5 offset and clamp, in [0, 1] units.

Examples:
    >>> cameras = ViewCameras(viewmats, Ks, width, height)           # the training views
    >>> result = compact_sh(dc, rest, means, cameras, tolerance=0.5 / 255)
    >>> result.degrees                                                # [N] per-Gaussian degree
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional

import torch
from torch import Tensor

from nerfstudio_trim.core.raster.sh import sh_bases

DEFAULT_RIDGE = 1e-3
NEAR_PLANE = 0.01
BATCH_ELEMENTS = 1 << 23
"""Gaussians x cameras x SH bases held at once (float64: 64 MiB)."""


@dataclass
class ViewCameras:
    """Pinhole cameras: world-to-camera [C, 4, 4] (OpenCV axes), intrinsics [C, 3, 3], image size in pixels."""

    viewmats: Tensor
    Ks: Tensor
    width: Tensor  # [C]
    height: Tensor  # [C]

    @property
    def centres(self) -> Tensor:
        """[C, 3] camera positions in the world."""
        rotation, translation = self.viewmats[:, :3, :3], self.viewmats[:, :3, 3]
        return -(rotation.transpose(1, 2) @ translation[..., None])[..., 0]


@dataclass
class CompactedSH:
    """Refitted coefficients and each Gaussian's degree (its bands above it are exactly zero)."""

    features_dc: Tensor  # [N, 3]
    features_rest: Tensor  # [N, K, 3]
    degrees: Tensor  # [N] int64


def view_directions(means: Tensor, cameras: ViewCameras) -> tuple[Tensor, Tensor]:
    """([N, C, 3] unit directions from each camera to each Gaussian, [N, C] whether its centre projects
    inside that camera's image, in front of the near plane)."""
    local = torch.einsum("cij,nj->nci", cameras.viewmats[:, :3, :3], means) + cameras.viewmats[:, :3, 3]
    depth = local[..., 2]
    safe = torch.where(depth > NEAR_PLANE, depth, torch.ones_like(depth))
    u = cameras.Ks[:, 0, 0] * local[..., 0] / safe + cameras.Ks[:, 0, 2]
    v = cameras.Ks[:, 1, 1] * local[..., 1] / safe + cameras.Ks[:, 1, 2]
    inside = (depth > NEAR_PLANE) & (u >= 0) & (u < cameras.width) & (v >= 0) & (v < cameras.height)
    directions = torch.nn.functional.normalize(means[:, None, :] - cameras.centres[None], dim=-1)
    return directions, inside


def _refit(bases: Tensor, targets: Tensor, weights: Tensor, bands: int, ridge: float) -> Tensor:
    """[N, bands, 3] least-squares SH coefficients of degree (sqrt(bands) - 1) for targets [N, C, 3] with
    per-camera weights [N, C] (0 or 1); the ridge penalty spares the base colour."""
    used = bases[..., :bands] * weights[..., None]
    gram = used.transpose(1, 2) @ bases[..., :bands]
    penalty = torch.full((bands,), ridge, dtype=bases.dtype, device=bases.device)
    penalty[0] = ridge * 1e-6  # keeps Gaussians seen by no camera solvable
    return torch.linalg.solve(gram + torch.diag(penalty), used.transpose(1, 2) @ targets)


@torch.no_grad()
def compact_sh(
    features_dc: Tensor,
    features_rest: Tensor,
    means: Tensor,
    cameras: ViewCameras,
    tolerance: float,
    ridge: float = DEFAULT_RIDGE,
) -> CompactedSH:
    """Each Gaussian's lowest SH degree within ``tolerance`` (colour units) of its own colours towards every
    training camera that sees it, with refitted coefficients (see the module docstring).

    Args:
        features_dc: [N, 3] base colour coefficients. features_rest: [N, K, 3], K = (degree + 1)^2 - 1.
        means: [N, 3] positions (the cameras' frame).
        cameras: the training cameras.
        tolerance: largest change allowed in any colour channel towards any camera that sees the Gaussian.
        ridge: penalty on the refitted higher-band coefficients (keeps the refit small and stable).
    """
    count, coefficients = features_rest.shape[:2]
    degree = {0: 0, 3: 1, 8: 2, 15: 3}[coefficients]
    out_dc, out_rest = features_dc.clone(), features_rest.clone()
    degrees = torch.full((count,), degree, dtype=torch.int64, device=means.device)
    if degree == 0:
        return CompactedSH(out_dc, out_rest, degrees)
    chunk = max(1, BATCH_ELEMENTS // (cameras.viewmats.shape[0] * (degree + 1) ** 2))
    for start in range(0, count, chunk):
        end = min(count, start + chunk)
        directions, inside = view_directions(means[start:end].to(torch.float64), _as_float64(cameras))
        bases = sh_bases(degree, directions)  # [n, C, (degree + 1)^2]
        coefficients_all = torch.cat([features_dc[start:end, None], features_rest[start:end]], dim=1).to(torch.float64)
        targets = bases @ coefficients_all  # [n, C, 3]
        weights = inside.to(torch.float64)
        unseen = weights.sum(dim=1) == 0
        done = unseen.clone()
        fitted = coefficients_all.clone()
        fitted[unseen, 1:] = 0.0
        chosen = torch.full((end - start,), degree, dtype=torch.int64, device=means.device)
        chosen[unseen] = 0
        for candidate in range(degree):
            bands = (candidate + 1) ** 2
            refit = _refit(bases, targets, weights, bands, ridge)
            error = ((bases[..., :bands] @ refit - targets).abs().amax(dim=-1) * weights).amax(dim=1)
            accept = ~done & (error <= tolerance)
            fitted[accept] = 0.0
            fitted[accept, :bands] = refit[accept]
            chosen[accept] = candidate
            done |= accept
        out_dc[start:end] = fitted[:, 0].to(features_dc.dtype)
        out_rest[start:end] = fitted[:, 1:].to(features_rest.dtype)
        degrees[start:end] = chosen
    return CompactedSH(out_dc, out_rest, degrees)


def _as_float64(cameras: ViewCameras) -> ViewCameras:
    return ViewCameras(cameras.viewmats.to(torch.float64), cameras.Ks.to(torch.float64),
                       cameras.width.to(torch.float64), cameras.height.to(torch.float64))  # fmt: skip


def band_mask(degrees: Tensor, coefficients: int) -> Tensor:
    """[N, K, 1] float mask: 1 for the higher-band coefficients at or below each Gaussian's degree, else 0."""
    index = torch.arange(coefficients, device=degrees.device)
    band_of = torch.floor(torch.sqrt(index.to(torch.float32) + 1.0)).to(torch.int64)  # coefficient k is in band sqrt(k+1)
    return (band_of[None, :] <= degrees[:, None]).to(torch.float32)[..., None]


def with_sh_degrees(params: Mapping[str, Tensor], degrees: Optional[Tensor]) -> Dict[str, Tensor]:
    """``params`` (splatfacto's names; features_rest [N, K, 3]) as a file stores them after SH compaction: the
    higher bands above each Gaussian's degree (``degrees`` [N] int64) set to zero, by a product with
    ``band_mask`` (differentiable). ``degrees`` None: the parameters unchanged. The other tensors are shared."""
    result = dict(params)
    if degrees is not None:
        rest = result["features_rest"]
        result["features_rest"] = rest * band_mask(degrees.to(rest.device), rest.shape[1]).to(rest.dtype)
    return result
