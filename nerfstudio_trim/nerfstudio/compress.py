"""``ns-trim compress INPUT [--data DATA] --output-dir DIR``: any 3DGS scene to a small ``.nstrim`` file, without
training.

INPUT is a splatfacto or splatfacto-trim run (its config.yml, or a step-*.ckpt in its run folder; the Gaussians
live in the run's normalised frame) or a Gaussian-splat PLY in the INRIA layout (from any trainer or tool; its
Gaussians live in the capture's frame). The pruning loop of ``ns-train splatfacto-trim`` (``core.prune.run``)
removes the least important Gaussians round after round until a target (file size, count, fraction) is met or
the training views' PSNR falls too far; there is no fine-tuning, so each round is checked at once. With DATA
(the dataset the scene was made from; its training split only) the Gaussians are scored by rendering the
training views, SH compaction drops the colour bands they do not need, and a quality floor holds; without it a
view-free rule picks the Gaussians (weaker, and nothing checks the quality).
"""

from __future__ import annotations

import copy
import datetime
import json
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Literal, Optional, Sequence, Tuple

import torch
import tyro
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.utils.rich_utils import CONSOLE
from rich.text import Text
from torch import Tensor

from nerfstudio_trim.bench import latest_checkpoint
from nerfstudio_trim.core.codec.nstrim import EXTENSION, decode, encode
from nerfstudio_trim.core.codec.ply import read_ply, write_ply
from nerfstudio_trim.core.files import check_output, make_dir, write_atomic
from nerfstudio_trim.core.prune.render_scores import ScoringView
from nerfstudio_trim.core.prune.run import PruningRun, RoundReport
from nerfstudio_trim.core.prune.scene_host import (
    VIEW_FREE_SCORE_MODES,
    SceneHost,
    SceneScoreMode,
    ViewFit,
    view_fit,
)
from nerfstudio_trim.core.prune.schedule import Action, TrimSchedule
from nerfstudio_trim.core.quantize.gaussians import CodecSettings, quantize_gaussians
from nerfstudio_trim.core.scene import IDENTITY_TRANSFORM, SplatScene, sh_degree_of
from nerfstudio_trim.core.text import printable
from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio.checks import check_checkpoint, check_data, check_device
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state
from nerfstudio_trim.nerfstudio.config_yaml import load_config
from nerfstudio_trim.nerfstudio.console import warn
from nerfstudio_trim.nerfstudio.evaluate import load_split
from nerfstudio_trim.nerfstudio.export import size_report
from nerfstudio_trim.progress import progress

METHOD = "ns-trim compress"
SPLATFACTO_RANDOM_BACKGROUND = (0.1490, 0.1647, 0.2157)
"""What splatfacto renders behind the Gaussians in eval mode when it trained on random backgrounds (nerfstudio
1.1.5's ``SplatfactoModel.populate_modules``: viser's default background)."""
ALIGNMENT_MIN_CORRELATION = 0.3
"""A scene lines up with a dataset when the brightness of its renders of the training views correlates at least
this much with the images' (``ViewFit.correlation``). Measured on the demo scene: 0.99 in place; 0.04 in the
wrong frame (normalised Gaussians read as a capture-frame PLY), 0.03 moved 5 units away, 0.16 with two axes
swapped, 0.10 moved 0.3 units, 0.29 scaled by 0.8. On the tests' 30-step run: 0.58 in place, 0.04 in the
wrong frame."""

Transform = Tuple[Tuple[float, ...], ...]
"""A dataparser transform, 3 rows of 4."""


@dataclass
class InputScene:
    """A scene read from a run or a PLY: its Gaussians and what a file needs to place and render them."""

    params: Dict[str, Tensor]
    """splatfacto's parameters (float32, CPU)."""
    sh_degrees: Optional[Tensor]
    """[N] SH degree of each Gaussian where an earlier trim compacted them, else None."""
    frame: str
    """"nerfstudio-normalized" (a run) or "capture" (a PLY)."""
    dataparser_transform: Transform
    dataparser_scale: float
    background: Tuple[float, float, float]
    rasterize_mode: str
    source: Dict[str, Any]
    """What the input was, for the file's ``source``."""

    def template(self, codec: CodecSettings) -> SplatScene:
        """The scene as a file of the unpruned Gaussians holds it (what ``SceneHost`` fills with its own)."""
        return SplatScene(
            gaussians=quantize_gaussians(self.params, codec), sh_degree=sh_degree_of(self.params["features_rest"]),
            dataparser_transform=self.dataparser_transform, dataparser_scale=self.dataparser_scale,
            background=self.background, rasterize_mode=self.rasterize_mode, frame=self.frame,
            source={"software": f"nerfstudio-trim {version('nerfstudio-trim')}", "method": METHOD, **self.source,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
        )  # fmt: skip


def read_input(path: Path, data: Optional[Path]) -> InputScene:
    """A run (config.yml or a step-*.ckpt in its run folder) or a PLY; ``data``: where the run's dataset is,
    should the path its config records be gone."""
    path = Path(path)
    if not path.exists():
        raise TrimError(f"{path} does not exist")
    if path.is_dir():
        raise TrimError(f"{path} is a folder: give a run's config.yml, one of its step-*.ckpt, or a .ply")
    suffix = path.suffix.lower()
    if suffix == ".ply":
        return read_ply_input(path)
    if suffix in (".yml", ".yaml"):
        return read_run_input(path, latest_checkpoint(path.parent), data)
    if suffix == ".ckpt":
        config = path.parent.parent / "config.yml"
        if not config.is_file():
            raise TrimError(f"{path} is not in a run folder with its config.yml ({config} does not exist), which says "
                            "how the run normalised and rendered the scene")  # fmt: skip
        return read_run_input(config, path, data)
    raise TrimError(f"{path} is neither a run (config.yml, step-*.ckpt) nor a Gaussian-splat PLY (.ply)")


def read_ply_input(path: Path) -> InputScene:
    """A Gaussian-splat PLY (``read_ply``; what it changed or left out shown as warnings), in the capture's frame."""
    try:
        scene = read_ply(path)
    except OSError as exc:
        raise TrimError(f"cannot read {path}: {exc.strerror or exc}") from None
    for note in scene.notes:
        warn(f"{path}: {note}")
    if scene.params["means"].shape[0] == 0:
        raise TrimError(f"{path} holds no Gaussians")
    return InputScene(
        params=scene.params, sh_degrees=None, frame="capture", dataparser_transform=IDENTITY_TRANSFORM,
        dataparser_scale=1.0, background=(0.0, 0.0, 0.0), rasterize_mode="classic",
        source={"input": str(path), "input_kind": "Gaussian-splat PLY"},
    )  # fmt: skip


def read_run_input(config_path: Path, checkpoint: Path, data: Optional[Path]) -> InputScene:
    """The Gaussians of a splatfacto(-trim) run's checkpoint, in the run's normalised frame, with its eval
    background and rasterize mode (and each Gaussian's SH degree, after a trim's SH compaction)."""
    config = load_config(config_path)
    if not isinstance(config, TrainerConfig):
        raise TrimError(f"{config_path} is not a nerfstudio config")
    pipeline = check_checkpoint(checkpoint)
    params = {name: value.detach().to(torch.float32).clone() for name, value in gaussian_state(pipeline).items()}
    if params["means"].shape[0] == 0:
        raise TrimError(f"{checkpoint} holds no Gaussians")
    degrees = (pipeline.get("_model._extra_state") or {}).get("sh_degrees")
    if not isinstance(degrees, Tensor) or degrees.shape != (params["means"].shape[0],):
        degrees = None
    model = config.pipeline.model
    transform, scale = run_normalisation(config, config_path.parent, data)
    step = pipeline.get("step")
    return InputScene(
        params=params, sh_degrees=degrees, frame="nerfstudio-normalized", dataparser_transform=transform,
        dataparser_scale=scale, background=eval_background(getattr(model, "background_color", "black")),
        rasterize_mode=getattr(model, "rasterize_mode", "classic"),
        source={"input": str(checkpoint), "input_kind": f"{config.method_name} run",
                **({"step": int(step)} if isinstance(step, int) else {})},
    )  # fmt: skip


def eval_background(background_color: str) -> Tuple[float, float, float]:
    """What splatfacto renders behind the Gaussians in eval mode, for its ``background_color`` option."""
    colours = {"random": SPLATFACTO_RANDOM_BACKGROUND, "white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
    if background_color not in colours:
        raise TrimError(f"unknown background_color {background_color!r} in the run's config")
    return colours[background_color]


def run_normalisation(config: TrainerConfig, run_dir: Path, data: Optional[Path]) -> Tuple[Transform, float]:
    """(dataparser transform [3 x 4], scale) that took the run's dataset to the frame its Gaussians live in: the
    run's dataparser_transforms.json (ns-train writes it), else its dataparser applied to its dataset again (the
    path its config records, else ``data``)."""
    saved = run_dir / "dataparser_transforms.json"
    if saved.is_file():
        try:
            values = json.loads(saved.read_text())
            transform = tuple(tuple(float(x) for x in row) for row in values["transform"][:3])
            if len(transform) != 3 or any(len(row) != 4 for row in transform):
                raise ValueError("the transform is not 3 x 4")
            return transform, float(values["scale"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TrimError(f"cannot read {saved} ({exc})") from None
    datamanager = copy.deepcopy(config.pipeline.datamanager)
    recorded = config.data or datamanager.data or datamanager.dataparser.data
    dataset = Path(recorded) if recorded is not None and Path(recorded).exists() else data
    if dataset is None:
        raise TrimError(f"the run has no {saved.name} and its dataset ({recorded}) is gone: give it with --data")
    datamanager.data = dataset
    outputs = check_data(datamanager)
    return tuple(tuple(row) for row in outputs.dataparser_transform.double().tolist()), float(outputs.dataparser_scale)


def evenly_spaced(count: int, most: Optional[int]) -> List[int]:
    """At most ``most`` indices of ``range(count)``, evenly spaced, first and last included (None: all)."""
    if most is None or most >= count:
        return list(range(count))
    if most == 1:
        return [0]
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def training_views(data: Path, scene: SplatScene, device: torch.device, most: Optional[int]) -> List[ScoringView]:
    """At most ``most`` of the dataset's training views (evenly spaced), loaded as ``ns-trim eval`` loads its
    eval views, their cameras in ``scene``'s frame, their images over its background."""
    split = load_split(data, "train", scene, device)
    background = torch.tensor(scene.background, dtype=torch.float32, device=device)
    return [
        ScoringView.from_camera_to_world(
            split.camera_to_worlds[i].to(device, torch.float32), split.intrinsics[i].to(device, torch.float32),
            split.widths[i], split.heights[i], split.target(i, background), background,
        )
        for i in evenly_spaced(len(split), most)
    ]  # fmt: skip


def check_alignment(fit: ViewFit, views: int, data: Path, frame: str) -> None:
    """Refuse a dataset whose training views the scene does not show (``ALIGNMENT_MIN_CORRELATION``)."""
    if fit.correlation >= ALIGNMENT_MIN_CORRELATION:
        return
    if frame == "capture":
        why = "a PLY is read in the capture's frame, that of the dataset's camera poses before nerfstudio normalises them"
    else:
        why = "a run's Gaussians are in the frame its own dataset was normalised to"
    raise TrimError(
        f"the dataset at {data} does not line up with the scene: rendered from {views} of its training views, the "
        f"scene covers {fit.coverage:.1%} of the pixels and does not show what the images show (brightness "
        f"correlation {fit.correlation:.2f}, PSNR {fit.psnr:.2f} dB); the dataset's frame does not match the "
        f"scene's ({why})"
    )


def staged(description: str, total: int) -> ContextManager[Callable[[], None]]:
    """``progress`` of the compress passes."""
    return progress(f"compress: {description}", total)


def say(line: str) -> None:
    """One line of plain text (paths and names from files: never markup)."""
    CONSOLE.print(Text(printable(line, max_chars=2000)), soft_wrap=True)


@dataclass
class Compress:
    """Compress a 3DGS scene (a splatfacto run or an INRIA-layout PLY) into a .nstrim file without training:
    pruning rounds scored on the dataset's training views, SH compaction, the file's quantization."""

    input: tyro.conf.Positional[Path]
    """A splatfacto or splatfacto-trim run (its config.yml or a step-*.ckpt in its run folder) or a
    Gaussian-splat PLY (INRIA layout)."""
    output_dir: Path
    """Folder to write scene.nstrim (and scene.ply) to (created if missing)."""
    data: Optional[Path] = None
    """The dataset the scene was made from (nerfstudio-data format, parsed with nerfstudio's defaults): its
    training views score the Gaussians, guide SH compaction and check the quality. Without it, a weaker
    view-free rule (opacity x volume) and no quality check."""
    target_size_mb: Optional[float] = None
    """Stop once the file is at most this size (MB, measured exactly after each round)."""
    target_count: Optional[int] = None
    """Stop at this many Gaussians."""
    target_fraction: Optional[float] = None
    """Stop at this fraction of the input's Gaussians."""
    max_psnr_drop: Optional[float] = 0.5
    """With --data: stop when the training views' PSNR falls this many dB below the input's as the file codes
    it (that round is undone; the codec's own cost is printed apart). None: no floor."""
    score: Optional[SceneScoreMode] = None
    """How Gaussians are ranked: abs-delta-mse (how much removing the Gaussian alone changes the squared error,
    exact; the lowest go first), delta-mse (the change itself, signed, as ns-train's), sensitivity (PUP 3D-GS),
    opacity, opacity-volume (view-free). Default: abs-delta-mse with --data, opacity-volume without."""
    prune_fraction: float = 0.2
    """Fraction of the Gaussians removed per round (each round: score, remove, check). Smaller is better and
    slower (a round costs a score pass): to 25% of the demo scene's Gaussians, 0.5 / 0.3 / 0.2 / 0.1 gave
    22.5 / 25.6 / 26.7 / 27.2 dB eval PSNR (24 views, no floor)."""
    max_rounds: int = 100
    """Most pruning rounds."""
    max_views: Optional[int] = 24
    """Score and check on at most this many training views, evenly spaced (None: all of them; each pass costs
    in proportion). On the demo scene all 91 gave 0.3 dB more eval PSNR than 24."""
    sh_compaction_tolerance: Optional[float] = 1.0 / 255
    """SH compaction after each round (with --data): each Gaussian keeps the lowest SH degree whose colours
    towards the training cameras stay within this tolerance (0-1 colour units). None: off."""
    codec: CodecSettings = field(default_factory=CodecSettings)
    """How the file quantizes each attribute (format 2.x)."""
    ply: bool = False
    """Also write the compressed scene, decoded, as a standard 3DGS PLY (scene.ply)."""
    device: Literal["cpu", "cuda"] = "cuda" if torch.cuda.is_available() else "cpu"
    """Where to render and score."""

    def main(self) -> Dict[str, Any]:
        """Check the options, outputs and input, prune, write; prints and returns the summary."""
        self._check_options()
        path, ply_path = self.output_dir / f"scene{EXTENSION}", self.output_dir / "scene.ply"
        for output in (path, *([ply_path] if self.ply else [])):
            check_output(output, self.input)
        check_device(self.device, cpu_option="--device cpu")
        loaded = read_input(self.input, self.data)
        count = int(loaded.params["means"].shape[0])
        schedule = self._schedule()
        schedule.validate(count)
        host, input_psnr = self._host(loaded)
        self._check_size_target(host)

        run = PruningRun(schedule, host)
        state = run.begin(0)
        self._announce(count, len(host.views), state.reference_psnr, state.reference_bytes, input_psnr)
        reports: List[RoundReport] = []
        while not run.done:
            report = run.advance(0)
            assert report is not None  # without fine-tuning every decision is due at once
            reports.append(report)
        decided = reports[-2]  # the FINAL or ROLLBACK before STOP
        output_psnr = None
        if host.views:  # measured at the last decision unless that round was undone (or nothing was measured)
            measured = decided.action == Action.FINAL and decided.psnr is not None
            output_psnr = decided.psnr if measured else host.training_psnr()

        scene = host.scene()
        data = encode(scene)
        make_dir(self.output_dir)
        write_atomic(path, data)
        if self.ply:  # the file decoded (its Gaussians in the file's order)
            write_ply(ply_path, decode(data).gaussians.dequantize(), scene.sh_degree)
        summary = {
            "input": str(self.input), "file": str(path), "bytes": len(data), "gaussians_before": count,
            "gaussians": scene.gaussians.count, "bytes_per_gaussian": len(data) / scene.gaussians.count,
            "stop_reason": decided.state.stop_reason, "views": len(host.views), "psnr_input": input_psnr,
            "psnr_before": state.reference_psnr, "psnr_after": output_psnr,
        }  # fmt: skip
        self._summarise(summary, scene, ply_path if self.ply else None)
        return summary

    def _host(self, loaded: InputScene) -> Tuple[SceneHost, Optional[float]]:
        """The loop's host over the input and (with --data) the training views, checked to line up with the
        scene; and the input's training-view PSNR (None without views)."""
        device = torch.device(self.device)
        template = loaded.template(self.codec)
        views: Sequence[ScoringView] = ()
        if self.data is not None:
            views = training_views(self.data, template, device, self.max_views)
        else:
            warn("no --data: no training views, so Gaussians are chosen by opacity x volume (weaker than scoring "
                 "them on the views), with no quality check and no SH compaction")  # fmt: skip
        params = {name: value.to(device) for name, value in loaded.params.items()}
        host = SceneHost(
            params, template, views, self.codec, self.score or ("abs-delta-mse" if views else "opacity-volume"),
            self.sh_compaction_tolerance, loaded.sh_degrees, on_report=self._report, progress=staged,
        )  # fmt: skip
        if self.data is None:
            return host, None
        with staged("checking the dataset lines up, view", len(views)) as advance:
            fit = view_fit(params, views, host.rasterize_mode, on_view=advance)
        check_alignment(fit, len(views), self.data, loaded.frame)
        return host, fit.psnr

    def _check_options(self) -> None:
        if self.data is None and self.score is not None and self.score not in VIEW_FREE_SCORE_MODES:
            raise TrimError(f"--score {self.score} renders the training views: give --data, or use "
                            f"{' or '.join(VIEW_FREE_SCORE_MODES)}")  # fmt: skip
        if self.data is None and all(t is None for t in (self.target_size_mb, self.target_count, self.target_fraction)):
            raise TrimError("without --data there is no quality floor: set a target (--target-size-mb, --target-count "
                            "or --target-fraction)")  # fmt: skip
        if self.target_count is not None and self.target_count < 1:
            raise TrimError(f"--target-count must be at least 1, got {self.target_count}")
        if self.target_fraction is not None and not 0 < self.target_fraction < 1:
            raise TrimError(f"--target-fraction must be between 0 and 1, got {self.target_fraction}")
        if self.max_views is not None and self.max_views < 1:
            raise TrimError(f"--max-views must be at least 1, got {self.max_views}")
        try:
            self.codec.validate()
        except ValueError as exc:
            raise TrimError(f"--codec: {exc}") from None

    def _schedule(self) -> TrimSchedule:
        """The loop's schedule: no fine-tuning, so each round is checked as soon as it is made."""
        return TrimSchedule(
            prune_fraction=self.prune_fraction, steps_per_round=0, final_steps=0, max_rounds=self.max_rounds,
            target_count=self.target_count, target_fraction=self.target_fraction, target_size_mb=self.target_size_mb,
            max_psnr_drop=self.max_psnr_drop if self.data is not None else None,
        )  # fmt: skip

    def _check_size_target(self, host: SceneHost) -> None:
        """Refuse a size target no file of these Gaussians can meet, or one the input's file meets already."""
        if self.target_size_mb is None:
            return
        target = self.target_size_mb * 1e6
        single = host.file_bytes(torch.arange(host.count, device=host.params["means"].device) == 0)
        if target < single:
            raise TrimError(f"--target-size-mb {self.target_size_mb} is below the file of a single Gaussian "
                            f"({single:,} bytes): no number of Gaussians meets it")  # fmt: skip
        full = host.file_bytes()
        if full <= target:
            raise TrimError(f"the target size ({self.target_size_mb} MB) is already met by the input's file "
                            f"({full / 1e6:.3f} MB): nothing to prune")  # fmt: skip

    def _announce(self, count: int, views: int, reference_psnr: Optional[float], reference_bytes: Optional[int],
                  input_psnr: Optional[float]) -> None:  # fmt: skip
        line = f"compress: {count:,} Gaussians loaded"
        if reference_bytes is not None:
            line += f", file {reference_bytes / 1e6:.3f} MB"
        if input_psnr is not None:
            line += f", training-view PSNR over {views} views {input_psnr:.2f} dB"
        if reference_psnr is not None:
            line += f" ({reference_psnr:.2f} dB as the file codes it)"
        say(line)

    def _summarise(self, summary: Dict[str, Any], scene: SplatScene, ply_path: Optional[Path]) -> None:
        """The size table, why pruning stopped, the training-view PSNR before and after."""
        size_report(Path(summary["file"]), summary["bytes"], scene, summary["gaussians_before"])
        say(f"compress: stopped: {summary['stop_reason']}")
        if summary["views"]:
            before = summary["psnr_before"]
            coded = f", as the file codes it {before:.2f} dB" if before is not None else ""
            say(f"compress: training-view PSNR over {summary['views']} views: input {summary['psnr_input']:.2f} dB"
                f"{coded}, compressed {summary['psnr_after']:.2f} dB")  # fmt: skip
        if self.target_size_mb is not None and summary["bytes"] > self.target_size_mb * 1e6:
            warn(f"the file ({summary['bytes'] / 1e6:.3f} MB) is above --target-size-mb {self.target_size_mb}: "
                 f"pruning stopped first ({summary['stop_reason']})")  # fmt: skip
        if ply_path is not None:
            say(f"compress: wrote {ply_path}")

    @staticmethod
    def _report(report: RoundReport) -> None:
        if report.action != Action.STOP:
            say(f"compress: {report.describe()}")
