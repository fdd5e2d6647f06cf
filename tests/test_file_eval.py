"""ns-trim eval places the dataset's cameras in the file's frame."""

import math

import torch

from nerfstudio_trim.core.scene import SplatScene
from nerfstudio_trim.core.quantize.gaussians import quantize_gaussians
from nerfstudio_trim.nerfstudio.evaluate import cameras_into_frame
from tests.test_quantize import random_params


def rotation(axis: int, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    r = torch.eye(3, dtype=torch.float64)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def normalise(transform: torch.Tensor, scale: float, points: torch.Tensor) -> torch.Tensor:
    return scale * (points @ transform[:, :3].T + transform[:, 3])


def test_cameras_see_the_same_points_in_the_files_frame():
    file_transform = torch.cat([rotation(2, 0.7), torch.tensor([[0.3], [-1.0], [2.0]], dtype=torch.float64)], 1)
    data_transform = torch.cat([rotation(0, -0.4), torch.tensor([[1.0], [0.5], [-0.2]], dtype=torch.float64)], 1)
    file_scale, data_scale = 0.25, 0.8
    scene = SplatScene(quantize_gaussians(random_params(1)), 3, tuple(map(tuple, file_transform.tolist())), file_scale)
    world = torch.randn(20, 3, dtype=torch.float64)
    cameras = torch.zeros(4, 3, 4, dtype=torch.float64)  # camera-to-world in the dataset's frame
    for i in range(4):
        cameras[i, :, :3] = rotation(i % 3, 0.3 * i + 0.1) @ rotation((i + 1) % 3, -0.2)
        cameras[i, :, 3] = torch.randn(3, dtype=torch.float64)
    moved = cameras_into_frame(cameras, data_transform, data_scale, scene)
    in_data, in_file = normalise(data_transform, data_scale, world), normalise(file_transform, file_scale, world)
    for i in range(4):
        seen_from_data = (in_data - cameras[i, :, 3]) @ cameras[i, :, :3]  # camera coordinates
        seen_from_file = (in_file - moved[i, :, 3]) @ moved[i, :, :3]
        torch.testing.assert_close(seen_from_file, seen_from_data * (file_scale / data_scale))
        torch.testing.assert_close(moved[i, :, :3] @ moved[i, :, :3].T, torch.eye(3, dtype=torch.float64))


def test_same_frame_is_left_untouched():
    transform = ((1.0, 0.0, 0.0, 0.5), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0))
    scene = SplatScene(quantize_gaussians(random_params(1)), 3, transform, 0.5)
    cameras = torch.randn(2, 3, 4)
    assert cameras_into_frame(cameras, torch.tensor(transform), 0.5, scene) is cameras
