"""EWA projection of 3D Gaussians to the image plane, numerically as gsplat 1.4.0 does it.

Conventions (gsplat's): ``viewmats`` are world-to-camera [C, 4, 4] in OpenCV axes (x right, y down,
z forward); ``Ks`` are pinhole intrinsics [C, 3, 3] in pixels; pixel centres sit at +0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass
class Projection:
    """Per-camera, per-Gaussian screen-space quantities. Gaussians with ``radii == 0`` are culled."""

    radii: Tensor  # [C, N] int32 pixel radius (3 sigma of the blurred footprint), 0 = culled
    means2d: Tensor  # [C, N, 2] pixel coordinates of the projected centre
    depths: Tensor  # [C, N] camera-space z
    conics: Tensor  # [C, N, 3] inverse 2D covariance (a, b, c): [[a, b], [b, c]]
    compensations: Optional[Tensor]  # [C, N] antialiasing opacity factor, None in classic mode


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """[..., 4] quaternions (w, x, y, z), any norm, to [..., 3, 3] rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """World-space covariance R S S^T R^T: [N, 4] quats and [N, 3] scales (linear) to [N, 3, 3]."""
    m = quat_to_rotmat(quats) * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    antialiased: bool = False,
) -> Projection:
    """Project N Gaussians into C pinhole cameras.

    Args:
        means: [N, 3] world positions.
        quats: [N, 4] rotations (w, x, y, z), normalised here.
        scales: [N, 3] standard deviations along the local axes (linear, world units).
        viewmats: [C, 4, 4] world-to-camera.
        Ks: [C, 3, 3] intrinsics.
        width, height: image size in pixels.
        eps2d: screen-space blur (pixels^2) added to the 2D covariance's diagonal.
        near_plane, far_plane: camera-space depth range kept.
        radius_clip: Gaussians whose pixel radius is <= this are culled.
        antialiased: also return the opacity compensation sqrt(det(cov) / det(cov + blur)).
    """
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", rot, means) + trans[:, None, :]  # [C, N, 3]
    covars_c = rot[:, None] @ covariance_3d(quats, scales)[None] @ rot[:, None].transpose(-1, -2)

    x, y, depth = means_c.unbind(-1)
    # Gaussians behind the near plane are culled below; divide by a safe depth so that they cannot
    # put inf or NaN into the backward pass (0 * inf) of the Gaussians that are kept.
    z = torch.where(depth > near_plane, depth, torch.ones_like(depth))
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # Clamp the Jacobian's evaluation point to 1.3x the field of view, as gsplat does, so Gaussians
    # far outside the frustum do not explode in size.
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    tx = z * torch.clamp(x / z, min=-(cx / fx + 0.3 * tan_fovx), max=(width - cx) / fx + 0.3 * tan_fovx)
    ty = z * torch.clamp(y / z, min=-(cy / fy + 0.3 * tan_fovy), max=(height - cy) / fy + 0.3 * tan_fovy)
    zeros = torch.zeros_like(z)
    jac = torch.stack([fx / z, zeros, -fx * tx / (z * z), zeros, fy / z, -fy * ty / (z * z)], dim=-1)
    jac = jac.reshape(z.shape + (2, 3))
    cov2d = jac @ covars_c @ jac.transpose(-1, -2)  # [C, N, 2, 2]
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    a, b, c = cov2d[..., 0, 0], 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 1, 1]
    det_orig = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b
    compensations = torch.sqrt(torch.clamp(det_orig / det, min=0.0)) if antialiased else None
    det_safe = det.clamp(min=1e-10)
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)

    with torch.no_grad():
        half_trace = 0.5 * (a + c)
        radius = torch.ceil(3.0 * torch.sqrt(half_trace + torch.sqrt(torch.clamp(half_trace**2 - det, min=0.01))))
        keep = (det > 0) & (depth > near_plane) & (depth < far_plane) & (radius > radius_clip)
        u, v = means2d[..., 0], means2d[..., 1]
        keep &= (u + radius > 0) & (u - radius < width) & (v + radius > 0) & (v - radius < height)
        radii = torch.where(keep, radius, torch.zeros_like(radius)).to(torch.int32)
    return Projection(radii=radii, means2d=means2d, depths=depth, conics=conics, compensations=compensations)


def screen_jacobian(
    means: Tensor,
    quats: Tensor,
    log_scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    antialiased: bool = False,
) -> Tensor:
    """Per camera and Gaussian, the Jacobian of its screen-space quantities with respect to its mean and
    log-scale (splatfacto's trained parameterisation), by autograd through ``project_gaussians``.

    Rows: mean2d x, y (pixels), conic a, b, c (pixels^-2), log compensation (0 unless ``antialiased``;
    also 0 where the compensation is 0). Columns: mean x, y, z (world units), log scale x, y, z.
    Each Gaussian's outputs depend on its own inputs only, so one backward pass per (camera, row)
    gives that row for all Gaussians.

    Args:
        means: [N, 3]; quats: [N, 4]; log_scales: [N, 3]; viewmats: [C, 4, 4]; Ks: [C, 3, 3].
        width, height, eps2d, near_plane, far_plane, antialiased: as ``project_gaussians``.

    Returns:
        [C, N, 6, 6].
    """
    with torch.enable_grad():
        means, log_scales = means.detach().requires_grad_(True), log_scales.detach().requires_grad_(True)
        proj = project_gaussians(
            means, quats.detach(), torch.exp(log_scales), viewmats, Ks, width, height,
            eps2d=eps2d, near_plane=near_plane, far_plane=far_plane, antialiased=antialiased,
        )  # fmt: skip
        quantities = [proj.means2d, proj.conics]
        if proj.compensations is not None:
            quantities.append(torch.log(proj.compensations.clamp(min=torch.finfo(means.dtype).tiny))[..., None])
        outputs = torch.cat(quantities, dim=-1)  # [C, N, 5 or 6]
        jacobian = means.new_zeros(outputs.shape[0], means.shape[0], 6, 6)
        for camera in range(outputs.shape[0]):
            for row in range(outputs.shape[-1]):
                grads = torch.autograd.grad(outputs[camera, :, row].sum(), (means, log_scales), retain_graph=True)
                jacobian[camera, :, row] = torch.cat(grads, dim=-1)
    if proj.compensations is not None:
        visible = (proj.compensations > 0)[..., None]
        jacobian[..., 5, :] = torch.where(visible, jacobian[..., 5, :], torch.zeros_like(jacobian[..., 5, :]))
    return jacobian
