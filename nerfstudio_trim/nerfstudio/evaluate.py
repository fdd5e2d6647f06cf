"""``ns-trim eval FILE --data DATA``: render a decoded ``.nstrim`` file over a dataset's eval split and
report what ``ns-eval`` reports for the model (PSNR, SSIM, LPIPS when its weights are available), with
the number of Gaussians, the file size and the render speed (median over the views of the render alone,
synchronised, after one warm-up render). Images are loaded as splatfacto's datamanager loads them
(undistorted, cached) and compared as splatfacto compares them."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import torch
import tyro
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import track
from rich.text import Text
from torch import Tensor
from pytorch_msssim import SSIM
from torchmetrics.image import PeakSignalNoiseRatio

from nerfstudio_trim.core.codec.container import Limits
from nerfstudio_trim.core.codec.nstrim import read_file
from nerfstudio_trim.core.scene import SplatScene, sh_degree_of
from nerfstudio_trim.core.files import check_output, make_dir, write_atomic
from nerfstudio_trim.core.raster.render import (
    over_background,
    rasterize_parameters,
    viewmats_from_camera_to_worlds,
)
from nerfstudio_trim.core.text import printable
from nerfstudio_trim.core.timing import timed
from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio.checks import check_data, check_device
from nerfstudio_trim.nerfstudio.config import IMAGE_CACHE_TYPE
from nerfstudio_trim.nerfstudio.lpips import LazyLPIPS


def _similarity(transform: Any, scale: float) -> Tensor:
    """[4, 4] float64 map from capture (world) coordinates to a normalised frame: scale * (R x + t)."""
    matrix = torch.eye(4, dtype=torch.float64)
    matrix[:3, :4] = torch.as_tensor(transform, dtype=torch.float64)
    matrix[:3, :] *= scale
    return matrix


def cameras_into_frame(camera_to_worlds: Tensor, data_transform: Any, data_scale: float, scene: SplatScene) -> Tensor:
    """Camera-to-world matrices [C, 3, 4] of a dataset normalised by (``data_transform``, ``data_scale``)
    moved into the frame the file's Gaussians live in. Identity when both frames are the same.

    The map between the frames is a rotation, a uniform scale and a translation; a pinhole image does not
    change when the whole scene, camera included, is scaled, so only the camera's rotation and position move.
    """
    source = _similarity(data_transform, data_scale)
    target = _similarity(scene.dataparser_transform, scene.dataparser_scale)
    if torch.equal(source, target):
        return camera_to_worlds
    change = target @ torch.linalg.inv(source)  # dataset-normalised -> file-normalised, [4, 4]
    scale = float(torch.linalg.det(change[:3, :3]).abs() ** (1.0 / 3.0))
    rotation = change[:3, :3] / scale
    moved = camera_to_worlds.to(torch.float64).clone()
    moved[:, :3, :3] = rotation @ moved[:, :3, :3]
    moved[:, :3, 3] = moved[:, :3, 3] @ change[:3, :3].T + change[:3, 3]
    return moved.to(camera_to_worlds.dtype)


@dataclass
class EvaluateFile:
    """Render a .nstrim file over a dataset's eval split: PSNR, SSIM, LPIPS, Gaussians, file size."""

    file: tyro.conf.Positional[Path]
    """The .nstrim file."""
    data: Path
    """The dataset (nerfstudio-data format, parsed with nerfstudio's defaults as ns-train does)."""
    output_path: Optional[Path] = None
    """Write the results as JSON here (as ns-eval's --output-path)."""
    device: Literal["cpu", "cuda"] = "cuda" if torch.cuda.is_available() else "cpu"
    """Where to render."""
    max_memory: Optional[float] = None
    """Most memory decoding may use (GiB); a file that needs more is refused before anything is allocated.
    Default: the memory available now."""

    def main(self) -> None:
        if self.output_path is not None:
            check_output(self.output_path, self.file)
        scene = read_file(self.file, Limits.with_memory(self.max_memory))
        check_device(self.device, cpu_option="--device cpu")
        results = evaluate_scene(scene, self.data, torch.device(self.device))
        results = {"file": str(self.file), "bytes": self.file.stat().st_size, **results}
        for key, value in results.items():
            CONSOLE.print(Text(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {printable(value)}"))
        if self.output_path is not None:
            make_dir(self.output_path.parent)
            write_atomic(self.output_path, json.dumps({"results": results}, indent=2).encode())


@dataclass
class DatasetSplit:
    """One split of a dataset as splatfacto's datamanager loads it (images undistorted, cameras to match), its
    cameras moved into a scene's frame."""

    images: List[Tensor]
    """[H, W, 3 or 4] as cached: float in [0, 1] or uint8, RGB or RGBA."""
    camera_to_worlds: Tensor
    """[C, 3, 4] nerfstudio camera-to-world (OpenGL axes), in the scene's frame."""
    intrinsics: Tensor
    """[C, 3, 3] pinhole intrinsics (pixels)."""
    widths: List[int]
    heights: List[int]

    def __len__(self) -> int:
        return len(self.images)

    def target(self, index: int, background: Tensor) -> Tensor:
        """[H, W, 3] float image ``index`` on ``background``'s device, composited over it where it has alpha."""
        image = self.images[index].to(background.device)
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image
        if image.shape[-1] == 4:
            image = image[..., 3:] * image[..., :3] + (1 - image[..., 3:]) * background
        return image


def load_split(data: Path, split: Literal["train", "eval"], scene: SplatScene, device: torch.device) -> DatasetSplit:
    """The ``split`` of the dataset at ``data`` (parsed with nerfstudio's defaults, as ns-train does), its cameras
    in the frame of ``scene``'s Gaussians."""
    datamanager_config = FullImageDatamanagerConfig(dataparser=NerfstudioDataParserConfig(data=data),
                                                    cache_images_type=IMAGE_CACHE_TYPE)  # fmt: skip
    check_data(datamanager_config)
    datamanager = datamanager_config.setup(device=device, test_mode="test")
    # Images before cameras: the first read of a split's images undistorts and crops them and rewrites its
    # cameras' intrinsics and sizes in place to match (nerfstudio's FullImageDatamanager).
    images = datamanager.cached_train if split == "train" else datamanager.cached_eval
    cameras = (datamanager.train_dataset if split == "train" else datamanager.eval_dataset).cameras
    outputs = datamanager.train_dataparser_outputs  # both splits share its normalisation
    camera_to_worlds = cameras_into_frame(
        cameras.camera_to_worlds, outputs.dataparser_transform, float(outputs.dataparser_scale), scene
    )
    return DatasetSplit(
        images=[entry["image"] for entry in images], camera_to_worlds=camera_to_worlds,
        intrinsics=cameras.get_intrinsics_matrices(), widths=[int(w) for w in cameras.width.flatten().tolist()],
        heights=[int(h) for h in cameras.height.flatten().tolist()],
    )  # fmt: skip


def evaluate_scene(
    scene: SplatScene, data: Path, device: torch.device, gaussians: Optional[Dict[str, Tensor]] = None
) -> Dict[str, Any]:
    """Mean PSNR / SSIM (/ LPIPS) of the scene over the eval images of ``data``, its Gaussian count and
    render FPS. ``gaussians``: render these float parameters (splatfacto's names; e.g. the scene decoded
    from another format) in the scene's frame, with its background and rasterize mode, instead of its own."""
    views = load_split(data, "eval", scene, device)
    gaussians = scene.gaussians.dequantize() if gaussians is None else gaussians
    params = {name: value.to(device) for name, value in gaussians.items()}
    background = torch.tensor(scene.background, dtype=torch.float32, device=device)
    # splatfacto's metrics, called as splatfacto calls them
    psnr, ssim = PeakSignalNoiseRatio(data_range=1.0), SSIM(data_range=1.0, size_average=True, channel=3)
    lpips = LazyLPIPS(normalize=True)
    metrics: Dict[str, List[float]] = {"psnr": [], "ssim": [], "lpips": []}
    render_seconds: List[float] = []

    def render(index: int) -> Tensor:
        """[H, W, 3] image of eval camera ``index``, its duration (synchronised) appended to render_seconds."""
        viewmats = viewmats_from_camera_to_worlds(views.camera_to_worlds[index : index + 1].to(device))
        intrinsics = views.intrinsics[index : index + 1].to(device)
        with timed(device, render_seconds):
            colours, alpha, _ = rasterize_parameters(
                params, viewmats, intrinsics, views.widths[index], views.heights[index],
                sh_degree=sh_degree_of(params["features_rest"]), rasterize_mode=scene.rasterize_mode,  # type: ignore[arg-type]
            )  # fmt: skip
            image = over_background(colours[..., :3], alpha, background)[0]
        return image

    with torch.no_grad():
        if len(views) > 0:
            render(0)  # warm-up, not timed
            render_seconds.clear()
        for index in track(range(len(views)), description="rendering the eval views", console=CONSOLE, transient=True):
            predicted = render(index)
            image = views.target(index, background)
            predicted_chw, target_chw = predicted.permute(2, 0, 1)[None].cpu(), image.permute(2, 0, 1)[None].cpu()
            metrics["psnr"].append(float(psnr(target_chw, predicted_chw)))
            metrics["ssim"].append(float(ssim(target_chw, predicted_chw)))
            value = float(lpips(target_chw, predicted_chw))  # NaN, with one warning, where unavailable
            if lpips.available:
                metrics["lpips"].append(value)
    results: Dict[str, Any] = {name: statistics.fmean(values) for name, values in metrics.items() if values}
    results.update(gaussians=int(params["means"].shape[0]), images=len(views))
    if render_seconds:
        results["render_fps"] = 1.0 / statistics.median(render_seconds)
    if not all(math.isfinite(value) for value in results.values()):
        raise TrimError("the scene renders non-finite metrics")
    return results
