"""``ns-export trimmed-splat`` (and ``ns-trim export``): a trained splatfacto-trim run to one ``.nstrim`` file.

The file holds exactly the parameters the model renders in eval mode after quantization-aware
fine-tuning (``core.quantize``), compressed by ``core.codec``; the export reports its size against the
uncompressed PLY of the same model and of the model the trim started from.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, fields
from importlib.metadata import version
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.utils.rich_utils import CONSOLE
from rich.table import Table
from rich.text import Text

from nerfstudio_trim.core.codec.nstrim import EXTENSION, encode
from nerfstudio_trim.core.scene import SplatScene
from nerfstudio_trim.core.files import check_output, make_dir, write_atomic
from nerfstudio_trim.core.codec.ply import ply_size
from nerfstudio_trim.core.quantize.gaussians import quantize_gaussians
from nerfstudio_trim.core.text import printable
from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio.checks import check_data
from nerfstudio_trim.nerfstudio.config_yaml import load_config
from nerfstudio_trim.nerfstudio.console import warn

METHOD = "splatfacto-trim"


def read_run_config(path: Path) -> TrainerConfig:
    """The config.yml of a splatfacto-trim or splatfacto run (nerfstudio's own YAML, read with
    ``config_yaml.ConfigLoader``, which builds only what nerfstudio configs hold); a splatfacto run's model
    becomes splatfacto-trim's with the same options (it loads splatfacto checkpoints, on any device).

    Raises:
        TrimError: missing file, not a nerfstudio config (or one holding other objects), or a config of
            another method.
    """
    from nerfstudio.models.splatfacto import SplatfactoModelConfig

    from nerfstudio_trim.nerfstudio.model import SplatfactoTrimModelConfig

    if not Path(path).is_file():
        raise TrimError(f"config {path} does not exist")
    config = load_config(path)
    if not isinstance(config, TrainerConfig):
        raise TrimError(f"{path} is not a nerfstudio config")
    if config.method_name not in (METHOD, "splatfacto"):
        raise TrimError(f"{path} is a {config.method_name} run; trimmed-splat exports {METHOD} and splatfacto runs")
    model = config.pipeline.model
    if not isinstance(model, SplatfactoTrimModelConfig):
        options = {f.name: getattr(model, f.name) for f in fields(SplatfactoModelConfig) if f.name != "_target"}
        config.pipeline.model = SplatfactoTrimModelConfig(**options)
    return config


def load_run(config: TrainerConfig) -> Tuple[Any, int]:
    """The model of a splatfacto-trim run (its config, from ``read_run_config``) at its latest checkpoint,
    in eval mode; returns (pipeline, step).

    Set up as nerfstudio's ``eval_setup`` sets it up, from this config: ``eval_setup`` would read the file
    again with PyYAML's unrestricted loader."""
    from nerfstudio.configs.method_configs import all_methods  # imports every method: only when exporting
    from nerfstudio.utils.eval_utils import eval_load_checkpoint

    check_data(config.pipeline.datamanager)
    if not any(config.get_checkpoint_dir().glob("step-*.ckpt")):
        raise TrimError(f"the run has no checkpoint in {config.get_checkpoint_dir()}")
    config.pipeline.datamanager._target = all_methods[config.method_name].pipeline.datamanager._target
    config.load_dir = config.get_checkpoint_dir()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pipeline = config.pipeline.setup(device=device, test_mode="inference")
    pipeline.eval()
    _, step = eval_load_checkpoint(config, pipeline)
    return pipeline, step


def scene_of(pipeline: Any, step: Optional[int], warn_unquantized: bool = True) -> SplatScene:
    """The scene ``ns-export trimmed-splat`` writes for a pipeline (see ``model_scene``).

    ``warn_unquantized``: say so when the model was not fine-tuned through this quantization."""
    model = pipeline.model
    if warn_unquantized and not (model.trimmer.active and model.config.trim.quantize):
        warn(
            "this model was not fine-tuned with quantization (not trimmed, or --pipeline.model.trim.quantize False): "
            "the file holds its parameters quantized, which ns-eval of the run did not measure; use ns-trim eval"
        )
    return model_scene(model, pipeline.datamanager.train_dataparser_outputs, step)


def model_scene(model: Any, dataparser_outputs: Any, step: Optional[int]) -> SplatScene:
    """The model's stored parameters (``file_parameters``), quantized as its quantization-aware fine-tuning
    renders them, with the dataparser's normalisation and the eval background; the model's mode is kept."""
    was_training = model.training
    with torch.no_grad():
        model.eval()
        background = model._get_background_color().detach().cpu().tolist()
        model.train(was_training)
        gaussians = quantize_gaussians(model.file_parameters(), model.config.trim.codec)
    return SplatScene(
        gaussians=gaussians,
        sh_degree=model.config.sh_degree,
        dataparser_transform=tuple(tuple(row) for row in dataparser_outputs.dataparser_transform.double().tolist()),
        dataparser_scale=float(dataparser_outputs.dataparser_scale),
        background=tuple(background),  # type: ignore[arg-type]
        rasterize_mode=model.config.rasterize_mode,
        source={
            "software": f"nerfstudio-trim {version('nerfstudio-trim')}",
            "method": METHOD,
            "step": step,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        },
    )


def size_report(path: Path, size: int, scene: SplatScene, initial_count: Optional[int]) -> Dict[str, Any]:
    """File size, bytes per Gaussian and ratios to uncompressed PLYs, printed as a table and returned."""
    count = scene.gaussians.count
    report: Dict[str, Any] = {
        "file": str(path), "bytes": size, "gaussians": count, "bytes_per_gaussian": size / max(count, 1),
        "ply_bytes": ply_size(count, scene.sh_degree),
        "baseline_gaussians": initial_count,
        "baseline_ply_bytes": None if initial_count is None else ply_size(initial_count, scene.sh_degree),
    }  # fmt: skip
    table = Table(title=Text(f"exported {printable(path)}"), show_header=False)
    table.add_row("Gaussians", f"{count:,}")
    table.add_row("file size", f"{size / 2**20:.2f} MiB ({size:,} bytes)")
    table.add_row("bytes per Gaussian", f"{report['bytes_per_gaussian']:.1f}")
    table.add_row("vs PLY of this model", f"{report['ply_bytes'] / size:.1f}x smaller ({report['ply_bytes'] / 2**20:.2f} MiB)")
    if initial_count is not None:
        table.add_row(
            "vs PLY of the untrimmed model",
            f"{report['baseline_ply_bytes'] / size:.1f}x smaller ({initial_count:,} Gaussians, "
            f"{report['baseline_ply_bytes'] / 2**20:.2f} MiB)",
        )
    CONSOLE.print(table)
    return report


@dataclass
class ExportTrimmedSplat:
    """Export a splatfacto-trim run as one compressed .nstrim file (format: docs/format.md)."""

    load_config: Path
    """Path to the run's config.yml."""
    output_dir: Path
    """Folder to write the file to (created if missing)."""
    output_filename: str = f"scene{EXTENSION}"
    """Name of the file."""

    def main(self) -> None:
        if not self.output_filename.endswith(EXTENSION):
            raise TrimError(f"--output-filename must end with {EXTENSION}")
        config = read_run_config(self.load_config)  # refuse other methods before loading anything
        path = self.output_dir / self.output_filename
        check_output(path, self.load_config, *config.get_checkpoint_dir().glob("step-*.ckpt"))
        pipeline, step = load_run(config)
        scene = scene_of(pipeline, step)
        with CONSOLE.status(f"compressing {scene.gaussians.count:,} Gaussians"):
            data = encode(scene)
        make_dir(self.output_dir)
        write_atomic(path, data)
        state = pipeline.model.trimmer.state
        size_report(path, len(data), scene, None if state is None else state.initial_count)
