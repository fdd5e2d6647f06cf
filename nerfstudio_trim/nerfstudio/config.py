"""The ``splatfacto-trim`` method, registered through the ``nerfstudio.method_configs`` entry point.

Importing this module (nerfstudio does, for every ``ns-*`` command) also lets torch's safe loader read
nerfstudio checkpoints, makes ``TrimError`` print as one line, and adds ``trimmed-splat`` to
``ns-export`` (``ns_export.py``). It must not import
``nerfstudio.scripts`` or ``nerfstudio.configs.method_configs`` (circular during plugin discovery).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Type

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from nerfstudio_trim.errors import install_excepthook
from nerfstudio_trim.nerfstudio.checkpoints import allow_nerfstudio_checkpoint_globals, gaussian_state
from nerfstudio_trim.nerfstudio.checks import check_checkpoint, check_data, check_device, check_load_dir
from nerfstudio_trim.nerfstudio.model import SplatfactoTrimModelConfig
from nerfstudio_trim.nerfstudio.ns_export import install as install_ns_export
from nerfstudio_trim.nerfstudio.pipeline import TrimPipelineConfig

allow_nerfstudio_checkpoint_globals()
install_excepthook()
install_ns_export()


@dataclass
class TrimTrainerConfig(TrainerConfig):
    """nerfstudio's trainer config; the inputs (device, checkpoint, trim schedule, data) are checked
    before the run writes anything."""

    _target: Type = field(default_factory=lambda: Trainer)

    def save_config(self) -> None:
        """Check device, checkpoint and data, then write config.yml (the run's first file)."""
        check_device(self.machine.device_type)
        if self.load_checkpoint is not None:
            pipeline = check_checkpoint(self.load_checkpoint)
            model = self.pipeline.model
            resuming = (pipeline.get("_model._extra_state") or {}).get("trim_state") is not None
            if isinstance(model, SplatfactoTrimModelConfig) and model.trim.enabled and not resuming:
                model.trim.validate(gaussian_state(pipeline)["means"].shape[0], steps=self.max_num_iterations)
                model.trim.codec.validate_as_option()
        check_load_dir(self.load_dir)
        check_data(self.pipeline.datamanager)
        super().save_config()


def _adam(lr: float) -> AdamOptimizerConfig:
    return AdamOptimizerConfig(lr=lr, eps=1e-15)


def _decay(lr_final: float, warmup_steps: int = 0) -> ExponentialDecaySchedulerConfig:
    return ExponentialDecaySchedulerConfig(
        lr_final=lr_final, max_steps=30000, warmup_steps=warmup_steps, lr_pre_warmup=0
    )


IMAGE_CACHE_TYPE: Literal["uint8", "float32"] = "uint8"
"""How the datamanager caches images (splatfacto's choice). Every evaluation of a file uses it too: images
with lens distortion are undistorted in this type, so a float cache would keep the resampling's fractions
that the run's rounded to bytes (0.0003 dB and 0.0004 SSIM apart on the tests' real capture)."""


splatfacto_trim = MethodSpecification(
    config=TrimTrainerConfig(
        method_name="splatfacto-trim",
        steps_per_eval_image=100,
        steps_per_eval_batch=0,
        steps_per_save=2000,
        steps_per_eval_all_images=1000,
        max_num_iterations=30000,
        mixed_precision=False,
        pipeline=TrimPipelineConfig(
            datamanager=FullImageDatamanagerConfig(
                dataparser=NerfstudioDataParserConfig(load_3D_points=True),
                cache_images_type=IMAGE_CACHE_TYPE,
            ),
            model=SplatfactoTrimModelConfig(),
        ),
        # splatfacto's optimizers and schedules (nerfstudio 1.1.5 method_configs.py)
        optimizers={
            "means": {"optimizer": _adam(1.6e-4), "scheduler": _decay(1.6e-6)},
            "features_dc": {"optimizer": _adam(0.0025), "scheduler": None},
            "features_rest": {"optimizer": _adam(0.0025 / 20), "scheduler": None},
            "opacities": {"optimizer": _adam(0.05), "scheduler": None},
            "scales": {"optimizer": _adam(0.005), "scheduler": None},
            "quats": {"optimizer": _adam(0.001), "scheduler": None},
            "camera_opt": {"optimizer": _adam(1e-4), "scheduler": _decay(5e-7, warmup_steps=1000)},
            "bilateral_grid": {"optimizer": _adam(2e-3), "scheduler": _decay(1e-4, warmup_steps=1000)},
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    ),
    description="Splatfacto on CPU or CUDA that trims a loaded splatfacto checkpoint (scored pruning, "
    "quantization-aware fine-tuning) for ns-export trimmed-splat.",
)
