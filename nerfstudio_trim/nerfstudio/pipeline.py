"""``TrimPipeline``: nerfstudio's pipeline, whose eval metrics (``ns-eval``'s JSON, the trainer's
all-image evals) also report the number of Gaussians, the exported file's size and a clean render speed.

nerfstudio's own ``fps`` times rendering *and* metric computation (LPIPS included) per image, without
synchronising CUDA (design.md trap 10). ``render_fps`` times ``get_outputs_for_camera`` alone, CUDA
synchronised, after one warm-up render, and takes the median over the eval cameras.
"""

from __future__ import annotations

import statistics
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Type

import torch
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig

from nerfstudio_trim.core.codec.nstrim import encode
from nerfstudio_trim.core.timing import timed
from nerfstudio_trim.nerfstudio.export import scene_of


@dataclass
class TrimPipelineConfig(VanillaPipelineConfig):
    """nerfstudio's pipeline config; its eval metrics add Gaussians, file size and render FPS."""

    _target: Type = field(default_factory=lambda: TrimPipeline)


class TrimPipeline(VanillaPipeline):
    """VanillaPipeline with extra eval metrics (see the module docstring)."""

    @contextmanager
    def _timing_renders(self, seconds: List[float]) -> Iterator[None]:
        """While active, every ``model.get_outputs_for_camera`` call appends its duration to ``seconds``."""
        model = self.model
        render = model.get_outputs_for_camera

        def timed_render(*args: Any, **kwargs: Any) -> Any:
            with timed(model.device, seconds):
                return render(*args, **kwargs)

        model.get_outputs_for_camera = timed_render  # type: ignore[method-assign]
        try:
            yield
        finally:
            del model.get_outputs_for_camera  # back to the class's method

    def get_average_eval_image_metrics(
        self, step: Optional[int] = None, output_path: Optional[Path] = None, get_std: bool = False
    ) -> Dict[str, Any]:
        """nerfstudio's averaged metrics plus ``gaussians``, ``render_fps`` (median, render only) and,
        under ``ns-eval`` (no training step), ``file_size_mb``: the size of the file ``ns-export
        trimmed-splat`` writes for this model (encoded here, exactly)."""
        cameras = self.datamanager.fixed_indices_eval_dataloader
        if len(cameras) > 0:  # warm-up: the first render pays for allocations and kernel loading
            self.eval()
            with torch.no_grad():
                self.model.get_outputs_for_camera(camera=cameras[0][0])
        seconds: List[float] = []
        with self._timing_renders(seconds):
            metrics = super().get_average_eval_image_metrics(step=step, output_path=output_path, get_std=get_std)
        metrics["gaussians"] = self.model.num_points
        if seconds:
            metrics["render_fps"] = 1.0 / statistics.median(seconds)
        if step is None:
            metrics["file_size_mb"] = len(encode(scene_of(self, step=None, warn_unquantized=False))) / 1e6
        return metrics
