"""``SplatfactoTrimModel``: splatfacto that runs on any device and fine-tunes loaded checkpoints.

Differences from nerfstudio 1.1.5's ``SplatfactoModel`` (see design.md section 2):
- rendering goes through ``core.rasterize``: gsplat's CUDA kernels for CUDA tensors, the pure-PyTorch
  rasterizer otherwise; no ``.cuda()`` anywhere (trap 4);
- ``load_state_dict`` resizes the existing parameters in place, so the optimizers built before the
  checkpoint was loaded step the loaded values (trap 1);
- a checkpoint's restored optimizer settings give way to the run's configured ones (learning rates);
- LPIPS is built on first use and is left out of the metrics, with one warning, offline (trap 5);
- after ``--load-checkpoint`` it trims (``nerfstudio/trimming.py``): scored pruning rounds with
  fine-tuning, rendered through the quantization the exported file will use, never densifying.
Trained from scratch it behaves as splatfacto does, densification included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type, Union
from unittest import mock

import torch
import torchmetrics.image.lpip
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.scene_box import OrientedBox
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.splatfacto import RGB2SH, SplatfactoModel, SplatfactoModelConfig
from nerfstudio.utils.rich_utils import CONSOLE
from nerfstudio.viewer.viewer_elements import ViewerCheckbox, ViewerNumber, ViewerText
from torch import Tensor, nn

from nerfstudio_trim.core.quantize.gaussians import fake_quantize_gaussians
from nerfstudio_trim.core.quantize.rate import sh_rest_bytes
from nerfstudio_trim.core.quantize.sh_compaction import with_sh_degrees
from nerfstudio_trim.core.raster.render import (
    over_background,
    rasterize_parameters,
    viewmats_from_camera_to_worlds,
)
from nerfstudio_trim.nerfstudio.checkpoints import GAUSSIAN_PARAMS
from nerfstudio_trim.nerfstudio.lpips import LazyLPIPS
from nerfstudio_trim.nerfstudio.optimizer_settings import apply_configured_settings
from nerfstudio_trim.nerfstudio.trim_config import LoadsOlderConfigs, TrimConfig
from nerfstudio_trim.nerfstudio.trimming import TrainingViews, Trimmer


@dataclass
class SplatfactoTrimModelConfig(LoadsOlderConfigs, SplatfactoModelConfig):
    """splatfacto's model options plus the trimming stage's (``trim``)."""

    _target: Type = field(default_factory=lambda: SplatfactoTrimModel)
    trim: TrimConfig = field(default_factory=TrimConfig)
    """Trimming after --load-checkpoint."""


class SplatfactoTrimModel(SplatfactoModel):
    """Splatfacto on CPU or CUDA, safe to fine-tune from a loaded checkpoint."""

    config: SplatfactoTrimModelConfig

    def populate_modules(self) -> None:
        # splatfacto moves the seed colours to CUDA and builds LPIPS (a download) here: hand it no
        # colours and a lazy LPIPS, then set the colours ourselves.
        seed_colours: Optional[Tensor] = None
        if self.seed_points is not None and not self.config.random_init and self.seed_points[1].shape[0] > 0:
            seed_colours = self.seed_points[1]
            self.seed_points = (self.seed_points[0], seed_colours[:0])
        with mock.patch.object(torchmetrics.image.lpip, "LearnedPerceptualImagePatchSimilarity", LazyLPIPS):
            super().populate_modules()
        if seed_colours is not None:
            self._set_seed_colours(seed_colours)
        self.trimmer = Trimmer(self.config.trim)
        # Viewer elements are collected before the checkpoint loads (design.md trap 9): made here.
        self.viewer_gaussians = ViewerNumber("Trim: Gaussians", default_value=0, disabled=True)
        self.viewer_file = ViewerText("Trim: file", default_value="not measured yet", disabled=True,
                                      hint="Size of the file ns-export trimmed-splat writes, at the last pruning round")  # fmt: skip
        self.viewer_score_heat_map = ViewerCheckbox(
            "Trim: score heat-map", default_value=False,
            hint="Also render the last pruning round's scores (output 'trim_score'): one more render per frame",
        )  # fmt: skip

    @torch.no_grad()
    def _set_seed_colours(self, colours: Tensor) -> None:
        """Initial colours from the point cloud ([N, 3], 0-255), as splatfacto sets them."""
        rgb = colours.float() / 255.0
        if self.config.sh_degree > 0:
            self.gauss_params["features_dc"].data.copy_(RGB2SH(rgb))
        else:
            self.gauss_params["features_dc"].data.copy_(torch.logit(rgb, eps=1e-10))
        self.gauss_params["features_rest"].data.zero_()

    def update_to_step(self, step: int) -> None:
        """Called with the checkpoint's step before loading it: schedules (SH degree) resume there."""
        self.step = step

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, **kwargs: Any):  # type: ignore[override]
        """Load a splatfacto state, resizing the Gaussian parameters in place.

        ``SplatfactoModel.load_state_dict`` replaces each ``nn.Parameter`` with a new one, which the
        optimizers (built earlier) never see. Here each existing Parameter gets new data of the
        checkpoint's size, so optimizer and model share tensors. LPIPS weights are not model state.
        """
        state = {key: value for key, value in state_dict.items() if not key.startswith("lpips.")}
        state.setdefault("_extra_state", {"trim_state": None, "removed": None})  # plain splatfacto
        for name in GAUSSIAN_PARAMS:  # checkpoints from before splatfacto's ParameterDict
            if name in state:
                state[f"gauss_params.{name}"] = state.pop(name)
        if "gauss_params.means" in state:
            count = state["gauss_params.means"].shape[0]
            for param in self.gauss_params.values():
                param.data = param.data.new_zeros((count, *param.shape[1:]))
        return nn.Module.load_state_dict(self, state, strict=strict, **kwargs)

    def get_extra_state(self) -> Dict[str, Any]:
        """The trim run's progress, so a mid-trim checkpoint resumes where it stopped."""
        return self.trimmer.extra_state()

    def set_extra_state(self, state: Any) -> None:
        self.trimmer.load_extra_state(state)
        self.show_trim_progress()

    def show_trim_progress(self) -> None:
        """The viewer's trim fields: Gaussians now, the file's size at the last measurement."""
        self.viewer_gaussians.value = self.num_points
        state = self.trimmer.state
        if state is not None and state.last_bytes is not None:
            count = state.last_bytes_count or self.num_points  # measured at (None: older checkpoints)
            self.viewer_file.value = f"{state.last_bytes / 1e6:.3f} MB ({state.last_bytes / max(1, count):.1f} bytes per Gaussian)"

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        """splatfacto's callbacks, plus the trimming step when a checkpoint was loaded (or a trim resumes).

        Called right after the trainer loads a checkpoint: the optimizers get this run's configured settings
        back (``optimizer_settings.py``; nerfstudio restores the checkpoint's learning rates), with the trim's
        own learning rate for the higher SH bands (``trim.sh_rest_lr``) when it trims.

        The run stops itself when its schedule is done; ``--max-num-iterations`` bounds it (the schedule
        stops pruning in time for its final fine-tune within it).
        """
        trainer = training_callback_attributes.trainer
        loaded = trainer is not None and getattr(trainer.config, "load_checkpoint", None) is not None
        trimming = trainer is not None and self.config.trim.enabled and (self.trimmer.active or loaded)
        optimizers = training_callback_attributes.optimizers
        if optimizers is not None:
            sh_rest_lr = self.config.trim.sh_rest_lr
            own = {"features_rest": sh_rest_lr} if trimming and sh_rest_lr is not None else {}
            changes = apply_configured_settings(optimizers, own)
            if changes:
                CONSOLE.print("optimizer settings from this run's config, not the loaded checkpoint: " + "; ".join(changes),
                              markup=False, highlight=False, soft_wrap=True)  # fmt: skip
        callbacks = super().get_training_callbacks(training_callback_attributes)
        if trimming:
            views = TrainingViews(training_callback_attributes.pipeline.datamanager, self.device)
            callbacks.append(
                TrainingCallback(
                    [TrainingCallbackLocation.BEFORE_TRAIN_ITERATION],
                    lambda step: self.trimmer.step(self, views, step, trainer),
                )
            )
        return callbacks

    def _get_downscale_factor(self) -> int:
        """splatfacto's coarse-to-fine resolution schedule, but full resolution while trimming: a trained
        model fine-tuned on downscaled images loses its detail."""
        return 1 if self.trimmer.active else super()._get_downscale_factor()

    def step_post_backward(self, step: int) -> None:
        """Densification (splatfacto's strategy), never while trimming."""
        if not self.trimmer.active:
            super().step_post_backward(step)

    def file_parameters(self) -> Dict[str, Tensor]:
        """The Gaussian parameters the exported file stores, before quantization: the model's own, with the
        higher SH bands above each Gaussian's degree (after SH compaction) set to zero (differentiable)."""
        degrees = self.trimmer.sh_degrees
        if degrees is not None and degrees.shape[0] != self.num_points:
            degrees = None  # no record for these Gaussians
        return with_sh_degrees(dict(self.gauss_params.items()), degrees)

    def render_parameters(self) -> Dict[str, Tensor]:
        """The Gaussian parameters as rendered: while trimming (quantization-aware), exactly the values
        the exported file stores (``trim.codec``)."""
        if not (self.trimmer.active and self.config.trim.quantize):
            return self.file_parameters()
        codec = self.config.trim.codec
        if torch.is_grad_enabled():
            return fake_quantize_gaussians(self.file_parameters(), codec)
        # Without gradients (eval renders, the viewer) the quantized values are reused until a parameter
        # changes: an optimizer step bumps its version, pruning replaces it.
        params: Dict[str, Tensor] = dict(self.gauss_params.items())
        degrees = self.trimmer.sh_degrees
        key = (codec, *((id(v), v._version) for v in params.values()), id(degrees), None if degrees is None else degrees._version)
        cached = self.__dict__.get("_quantized_cache")
        if cached is None or cached[0] != key:
            cached = (key, fake_quantize_gaussians(self.file_parameters(), codec))
            self.__dict__["_quantized_cache"] = cached
        return cached[1]

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        """splatfacto's losses, plus, while trimming, what makes the file smaller: the estimated bytes of the
        higher SH bands (``trim.rate_weight``) and the seed method's L1 penalty on them (``trim.sh_rest_l1``)."""
        losses = super().get_loss_dict(outputs, batch, metrics_dict)
        trim = self.config.trim
        if self.trimmer.active and (trim.rate_weight > 0 or trim.sh_rest_l1 > 0):
            rest = self.file_parameters()["features_rest"]
            if trim.rate_weight > 0:
                losses["sh_rate"] = trim.rate_weight * sh_rest_bytes(rest, trim.codec.sh_bits, trim.codec.sh_min_step).mean()
            if trim.sh_rest_l1 > 0:
                losses["sh_rest_l1"] = trim.sh_rest_l1 * rest.abs().mean()
        return losses

    def get_outputs(self, camera: Cameras) -> Dict[str, Union[Tensor, Any]]:
        """Render ``camera`` (one camera) on the model's device: rgb, depth, accumulation, background."""
        if not isinstance(camera, Cameras):
            raise TypeError(f"get_outputs needs a Cameras object, got {type(camera).__name__}")
        if self.training:
            if camera.shape[0] != 1:
                raise ValueError("splatfacto trains on one camera at a time")
            camera_to_worlds = self.camera_optimizer.apply_to_camera(camera)
        else:
            camera_to_worlds = camera.camera_to_worlds

        params = self.render_parameters()
        if self.crop_box is not None and not self.training:
            inside = self.crop_box.within(params["means"]).squeeze()
            if not bool(inside.any()):
                return self.get_empty_outputs(int(camera.width.item()), int(camera.height.item()), self.background_color)
            params = {name: value[inside] for name, value in params.items()}

        intrinsics, width, height = self._intrinsics_and_size(camera)
        self.last_size = (height, width)

        render_mode = "RGB+ED" if self.config.output_depth_during_training or not self.training else "RGB"
        camera_to_worlds = camera_to_worlds.to(self.device)
        render, alpha, self.info = rasterize_parameters(
            params, viewmats_from_camera_to_worlds(camera_to_worlds), intrinsics, width, height,
            sh_degree=self.config.sh_degree,
            active_sh_degree=min(self.step // self.config.sh_degree_interval, self.config.sh_degree),
            render_mode=render_mode, rasterize_mode=self.config.rasterize_mode,
            absgrad=self.strategy.absgrad and not self.trimmer.active,
        )  # fmt: skip
        if self.training and not self.trimmer.active:
            self.strategy.step_pre_backward(self.gauss_params, self.optimizers, self.strategy_state, self.step, self.info)

        background = self._get_background_color()
        rgb = over_background(render[..., :3], alpha, background)
        if self.config.use_bilateral_grid and self.training and camera.metadata and "cam_idx" in camera.metadata:
            rgb = self._apply_bilateral_grid(rgb, camera.metadata["cam_idx"], height, width)
        depth = None
        if render_mode == "RGB+ED":
            depth = render[..., 3:4]
            depth = torch.where(alpha > 0, depth, depth.detach().max()).squeeze(0)
        outputs = {"rgb": rgb.squeeze(0), "depth": depth, "accumulation": alpha.squeeze(0), "background": background}
        if not self.training:
            outputs["background"] = background.expand(height, width, 3)
        return outputs

    def _intrinsics_and_size(self, camera: Cameras) -> Tuple[Tensor, int, int]:
        """[1, 3, 3] intrinsics (pixels, on the model's device), width and height of ``camera`` at the
        resolution rendered now (splatfacto's coarse-to-fine schedule while training)."""
        downscale = self._get_downscale_factor()
        camera.rescale_output_resolution(1 / downscale)
        intrinsics = camera.get_intrinsics_matrices().to(self.device)
        width, height = int(camera.width.item()), int(camera.height.item())
        camera.rescale_output_resolution(downscale)
        return intrinsics, width, height

    def get_outputs_for_camera(self, camera: Cameras, obb_box: Optional[OrientedBox] = None) -> Dict[str, Tensor]:
        """A render for the viewer and for evaluation (``get_outputs`` in eval mode); with the viewer's
        "Trim: score heat-map" box ticked, also ``trim_score`` [H, W, 1]: the last pruning round's scores
        of the Gaussians, log-scaled to [0, 1] (absent before the first round and under a crop box).
        The heat map costs one more render, so it is never made unless asked for: not in the score pass,
        the training-view PSNR (both call ``get_outputs``) or ``ns-eval`` (no viewer, box unticked)."""
        outputs = super().get_outputs_for_camera(camera, obb_box=obb_box)
        if self.viewer_score_heat_map.value:
            heat = self._score_heat_map(camera.to(self.device))
            if heat is not None:
                outputs["trim_score"] = heat
        return outputs

    @torch.no_grad()
    def _score_heat_map(self, camera: Cameras) -> Optional[Tensor]:
        """[H, W, 1] composite of the last round's scores (``Trimmer.score_colours``) seen from ``camera``,
        or None when there are no scores for the current Gaussians or a crop box is set."""
        heat = self.trimmer.score_colours(self.num_points)
        if heat is None or self.crop_box is not None:
            return None
        intrinsics, width, height = self._intrinsics_and_size(camera)
        viewmats = viewmats_from_camera_to_worlds(camera.camera_to_worlds.to(self.device))
        render, _, _ = rasterize_parameters(
            self.render_parameters(), viewmats, intrinsics, width, height,
            sh_degree=self.config.sh_degree, colors=heat, rasterize_mode=self.config.rasterize_mode,
        )  # fmt: skip
        return render.squeeze(0)

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """splatfacto's eval metrics, without the LPIPS entries when LPIPS is unavailable."""
        metrics, images = super().get_image_metrics_and_images(outputs, batch)
        if isinstance(self.lpips, LazyLPIPS) and not self.lpips.available:
            metrics.pop("lpips", None)
            metrics.pop("cc_lpips", None)
        return metrics, images
