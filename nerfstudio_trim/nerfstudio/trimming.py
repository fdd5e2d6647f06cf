"""Runs the pruning loop (``core.prune.run``) inside ``ns-train``; the splatfacto-trim model is its host.

``Trimmer`` belongs to the model and holds what a checkpoint must keep to resume mid-trim and to show the run
afterwards: the run's state, the Gaussians the last round removed (for a rollback), each Gaussian's SH degree
after compaction, the last round's scores (the viewer's heat map). A training callback calls ``Trimmer.step``
before each iteration; ``ModelHost`` answers the loop's questions from the model, its optimizers and the
training views (scores, removal, SH compaction, training-view PSNR, the exact size of the exported file).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Optional, Tuple

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.trainer import Trainer
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor, nn

from nerfstudio_trim.core.codec.nstrim import encode
from nerfstudio_trim.core.prune.removal import append_gaussians, remove_gaussians
from nerfstudio_trim.core.prune.render_scores import ScoringView, delta_mse_scores, sensitivity_scores
from nerfstudio_trim.core.prune.run import PruningRun, RoundReport, Scores
from nerfstudio_trim.core.prune.schedule import Action, TrimState
from nerfstudio_trim.core.prune.scores import accumulate_scores, gamma_per_round, quantile_candidates
from nerfstudio_trim.core.quantize.sh_compaction import ViewCameras, compact_sh
from nerfstudio_trim.core.raster.render import viewmats_from_camera_to_worlds
from nerfstudio_trim.nerfstudio.trim_config import TrimConfig
from nerfstudio_trim.progress import LineProgress, progress

if TYPE_CHECKING:
    from nerfstudio_trim.nerfstudio.model import SplatfactoTrimModel

PER_GAUSSIAN_RECORDS = ("sh_degrees", "scores")
"""Per-Gaussian tensors the Trimmer keeps beside the parameters; they follow the Gaussians through removal."""


class TrainingViews:
    """The training cameras and images of a full-image datamanager, by index.

    The images are always read before the cameras: nerfstudio's first read of them undistorts and crops
    images taken through a lens with distortion and rewrites the cameras' intrinsics and sizes to match.
    """

    def __init__(self, datamanager: Any, device: torch.device):
        self._datamanager = datamanager
        self._device = device

    def __len__(self) -> int:
        return len(self._datamanager.cached_train)

    def __getitem__(self, index: int) -> Tuple[Cameras, Dict[str, Tensor]]:
        batch = dict(self._datamanager.cached_train[index])
        batch["image"] = batch["image"].to(self._device)
        return self._datamanager.train_cameras[index : index + 1].to(self._device), batch

    def dataparser_outputs(self) -> Any:
        """The training split's dataparser outputs (the normalisation the file records)."""
        return self._datamanager.train_dataparser_outputs

    def cameras(self) -> ViewCameras:
        """All training cameras as pinhole cameras (gsplat's conventions), for SH compaction."""
        _ = self._datamanager.cached_train  # the images first (see the class docstring)
        cameras = self._datamanager.train_cameras.to(self._device)
        return ViewCameras(
            viewmats_from_camera_to_worlds(cameras.camera_to_worlds), cameras.get_intrinsics_matrices(),
            cameras.width.flatten().to(torch.float32), cameras.height.flatten().to(torch.float32),
        )  # fmt: skip


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode (fixed background, no camera optimizer, full resolution), then back."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def scoring_views(model: "SplatfactoTrimModel", views: TrainingViews, pause: Callable[[], None]) -> Iterator[ScoringView]:
    """The training views as the scores render them: eval-mode cameras and background, and the images
    composited over that background as the model's loss does."""
    background = model._get_background_color()
    for index in range(len(views)):
        camera, batch = views[index]
        image = model.composite_with_background(model.get_gt_img(batch["image"]), background)
        intrinsics = camera.get_intrinsics_matrices()[0].to(model.device)
        yield ScoringView.from_camera_to_world(
            camera.camera_to_worlds[0], intrinsics, int(camera.width.item()), int(camera.height.item()), image,
            background,
        )  # fmt: skip
        pause()


class Trimmer:
    """What a trim run keeps on the model, and its step (see the module docstring)."""

    def __init__(self, config: TrimConfig):
        self.config = config  # the options, which are also the schedule (TrimConfig extends TrimSchedule)
        self.state: Optional[TrimState] = None
        self.removed: Optional[Dict[str, Tensor]] = None  # the last round's removed Gaussians and records
        self.sh_degrees: Optional[Tensor] = None  # [N] int64 SH degree of each Gaussian after compaction
        self.scores: Optional[Tensor] = None  # [N] the last round's scores of the current Gaussians
        self._run: Optional[PruningRun] = None
        self._fine_tuning: Optional[LineProgress] = None
        self._colours: Optional[Tuple[Tensor, Tensor]] = None  # (scores, their heat-map colours)

    @property
    def active(self) -> bool:
        """True from the first trim step on (quantization-aware rendering, no densification), the run's
        reference measurement included: the quality floor is measured from the model as the file stores it,
        so the codec's own cost does not use up the allowed drop."""
        return self.state is not None or self._run is not None

    def extra_state(self) -> Dict[str, Any]:
        """What a checkpoint must hold to resume mid-trim and to show the run afterwards."""
        return {"trim_state": None if self.state is None else self.state.to_dict(), "removed": self.removed,
                "sh_degrees": self.sh_degrees, "scores": self.scores}  # fmt: skip

    def load_extra_state(self, values: Dict[str, Any]) -> None:
        state = values.get("trim_state")
        self.state = None if state is None else TrimState.from_dict(state)
        self.removed = values.get("removed")
        self.sh_degrees, self.scores = values.get("sh_degrees"), values.get("scores")

    def records(self) -> Dict[str, Tensor]:
        """The per-Gaussian records that exist now, by name."""
        return {name: value for name in PER_GAUSSIAN_RECORDS if (value := getattr(self, name)) is not None}

    def step(self, model: "SplatfactoTrimModel", views: TrainingViews, step: int, trainer: Trainer) -> None:
        """Called before training iteration ``step``: start, prune, check or stop when due."""
        if self._run is None:
            host = ModelHost(model, self, views, pause_for_viewer(trainer))
            self._run = PruningRun(self.config, host, self.state)
            if self.state is None:
                self.state = self._run.begin(step, trainer.config.max_num_iterations)
                host.announce(self.state)
        report = self._run.advance(step)
        self.state = self._run.state
        if report is None:
            if self._fine_tuning is not None:
                self._fine_tuning.advance()
        elif report.action == Action.STOP:
            trainer.stop_training = True
        else:
            what = f"round {report.state.rounds}: fine-tuning" if report.action == Action.PRUNE else "final fine-tune"
            self._fine_tuning = LineProgress(f"trim: {what}, step", max(1, self.state.next_step - step))

    def score_colours(self, count: int) -> Optional[Tensor]:
        """[N, 1] the last round's scores as heat-map values in [0, 1] (their rank among the Gaussians, so any
        score's scale and sign work), or None when there are none for the current ``count`` Gaussians.
        Computed once per round, not per rendered frame."""
        scores = self.scores
        if scores is None or scores.shape[0] != count or count == 0:
            return None
        if self._colours is None or self._colours[0] is not scores:
            ranks = torch.empty_like(scores)
            ranks[torch.argsort(scores)] = torch.arange(count, dtype=scores.dtype, device=scores.device)
            self._colours = (scores, (ranks / max(1, count - 1))[:, None])
        return self._colours[1]


def pause_for_viewer(trainer: Trainer) -> Callable[[], None]:
    """Between two views of a long pass: let a connected viewer render (it waits for the training lock,
    which the trainer holds during callbacks). Nothing without a viewer."""
    if trainer.viewer_state is None:
        return lambda: None

    def pause() -> None:
        trainer.train_lock.release()
        try:
            time.sleep(0.005)
        finally:
            trainer.train_lock.acquire()

    return pause


class ModelHost:
    """The splatfacto-trim model as the pruning loop's host (``core.prune.run.PruningHost``)."""

    def __init__(self, model: "SplatfactoTrimModel", trimmer: Trimmer, views: TrainingViews, pause: Callable[[], None]):
        self.model, self.trimmer, self.views, self.pause = model, trimmer, views, pause
        self.config = trimmer.config

    @property
    def count(self) -> int:
        return self.model.num_points

    def announce(self, state: TrimState) -> None:
        """The run's start: what was loaded and how long the schedule can be."""
        config, model = self.config, self.model
        per_gaussian = state.reference_bytes / state.initial_count if state.reference_bytes and state.initial_count else None
        rounds = config.planned_rounds(state.initial_count, per_gaussian)
        budget = (state.end_step - state.next_step) if state.end_step is not None else None
        cut = budget is not None and config.max_steps(rounds) > budget
        if cut:
            rounds = config.rounds_within(budget)
        quality = f", training-view PSNR {state.reference_psnr:.2f} dB" if state.reference_psnr is not None else ""
        size = f", file {state.reference_bytes / 1e6:.3f} MB" if state.reference_bytes is not None else ""
        CONSOLE.print(f"trim: {model.num_points:,} Gaussians loaded{quality}{size}", markup=False, highlight=False,
                      soft_wrap=True)  # fmt: skip
        CONSOLE.print(
            f"trim: schedule of at most {rounds} rounds of {config.steps_per_round:,} steps and {config.final_steps:,} "
            f"final steps: at most {config.max_steps(rounds):,} steps"
            + (f" (cut to fit --max-num-iterations {budget:,})" if cut else ""),
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip

    def scores(self) -> Scores:
        """One score per Gaussian, by the configured mode (quantization-aware values, eval-mode renders)."""
        model, mode = self.model, self.config.score_mode
        if mode == "opacity":
            return self._scored(Scores(torch.sigmoid(model.gauss_params["opacities"].detach()).flatten()))
        if mode == "random":
            rounds = self.trimmer.state.rounds if self.trimmer.state else 0
            generator = torch.Generator().manual_seed(self.config.seed + rounds)
            return self._scored(Scores(torch.rand(model.num_points, generator=generator).to(model.device)))
        with evaluating(model), progress("trim: scoring Gaussians, view", total=len(self.views)) as advance:
            if mode in ("delta-mse", "sensitivity"):
                with torch.no_grad():
                    params = model.render_parameters()
                delta_mse = partial(delta_mse_scores, method=self.config.delta_mse_method)
                score = delta_mse if mode == "delta-mse" else sensitivity_scores
                values = score(
                    params, scoring_views(model, self.views, self.pause), model.config.sh_degree,
                    active_sh_degree=min(model.step // model.config.sh_degree_interval, model.config.sh_degree),
                    rasterize_mode=model.config.rasterize_mode, on_view=lambda _: advance(),
                )  # fmt: skip
                return self._scored(Scores(values))

            def view_loss(index: int) -> Tensor:
                camera, batch = self.views[index]
                return model.get_loss_dict(model.get_outputs(camera), batch)["main_loss"]

            def after_view(_: int) -> None:
                advance()
                self.pause()

            values = accumulate_scores(dict(model.gauss_params), view_loss, len(self.views),
                                       mode="abs-grad" if mode == "abs-grad" else "grad-norm", on_view=after_view)  # fmt: skip
        if mode != "opacity-grad-quantile":
            return self._scored(Scores(values))
        gamma = gamma_per_round(self.config.quantile_gamma_target, self.config.quantile_rounds)
        opacities = torch.sigmoid(model.gauss_params["opacities"].detach()).flatten()
        return self._scored(Scores(values, quantile_candidates(values, opacities, gamma)))

    def _scored(self, scores: Scores) -> Scores:
        """Keep the scores as a per-Gaussian record (the viewer's heat map), then hand them to the loop."""
        self.trimmer.scores = scores.values.detach()
        return scores

    def remove(self, mask: Tensor) -> None:
        """Remove the Gaussians of ``mask`` from parameters, optimizers, densification state and records."""
        model, trimmer = self.model, self.trimmer
        records = trimmer.records()
        removed = remove_gaussians(model.gauss_params, model.optimizers, mask, model.strategy_state)
        trimmer.removed = {**removed, **{name: value[mask] for name, value in records.items()}}
        for name, value in records.items():
            setattr(trimmer, name, value[~mask])

    def restore(self) -> None:
        """Put back the last round's Gaussians (optimizer moments start at zero)."""
        model, trimmer, removed = self.model, self.trimmer, self.trimmer.removed
        if removed is None:
            return
        params = {name: value for name, value in removed.items() if name in model.gauss_params}
        append_gaussians(model.gauss_params, model.optimizers, params, model.strategy_state)
        for name in PER_GAUSSIAN_RECORDS:
            current = getattr(trimmer, name)
            if current is not None and name in removed:
                setattr(trimmer, name, torch.cat([current, removed[name].to(current)]))
            elif current is not None:
                setattr(trimmer, name, None)  # no record of the restored Gaussians: drop the record

    def forget(self) -> None:
        self.trimmer.removed = None

    def settle(self) -> None:
        """SH compaction (``trim.sh_compaction_tolerance``) of the Gaussians kept: each gets the lowest SH
        degree that keeps its colours towards the training cameras; the model renders and stores its bands
        above it as zeros from now on."""
        tolerance = self.config.sh_compaction_tolerance
        model = self.model
        if tolerance is None or model.config.sh_degree == 0:
            return
        params = model.gauss_params
        with torch.no_grad():
            stored = model.file_parameters()  # the bands above earlier degrees are zero there
            result = compact_sh(stored["features_dc"].detach(), stored["features_rest"].detach(),
                                stored["means"].detach(), self.views.cameras(), tolerance)  # fmt: skip
            params["features_dc"].data.copy_(result.features_dc)
            params["features_rest"].data.copy_(result.features_rest)
        caps = self.trimmer.sh_degrees
        self.trimmer.sh_degrees = result.degrees if caps is None else torch.minimum(caps, result.degrees)

    @torch.no_grad()
    def training_psnr(self) -> float:
        """Mean PSNR (dB) over the training views, rendered as in eval mode."""
        model, total = self.model, 0.0
        with evaluating(model), progress("trim: training-view PSNR, view", total=len(self.views)) as advance:
            for index in range(len(self.views)):
                camera, batch = self.views[index]
                outputs = model.get_outputs(camera)
                target = model.composite_with_background(model.get_gt_img(batch["image"]), outputs["background"])
                mse = torch.mean((outputs["rgb"] - target) ** 2).clamp(min=1e-12)
                total += -10.0 * math.log10(float(mse))
                advance()
                self.pause()
        return total / max(1, len(self.views))

    def file_bytes(self) -> int:
        """Exact size of the file ``ns-export trimmed-splat`` would write now."""
        from nerfstudio_trim.nerfstudio.export import model_scene  # the exporter imports nerfstudio's scripts

        return len(encode(model_scene(self.model, self.views.dataparser_outputs(), step=None)))

    def report(self, report: RoundReport) -> None:
        """One console line, scalars for nerfstudio's writers (tensorboard, wandb) and the viewer's fields."""
        state = report.state
        line = f"trim step {report.step}: {report.describe()}"
        CONSOLE.print(line, markup=False, highlight=False, soft_wrap=True)
        # Imported here: nerfstudio.utils.writer and nerfstudio.configs.base_config import each other,
        # so importing the writer first (this module on its own) would fail.
        from nerfstudio.utils import writer

        writer.put_scalar(name="Trim/gaussians", scalar=report.count, step=report.step)
        writer.put_scalar(name="Trim/fraction_kept", scalar=report.count / state.initial_count, step=report.step)
        if report.file_bytes is not None:
            writer.put_scalar(name="Trim/file_mb", scalar=report.file_bytes / 1e6, step=report.step)
            writer.put_scalar(name="Trim/bytes_per_gaussian", scalar=report.file_bytes / max(1, report.measured_count), step=report.step)
        if report.psnr is not None:
            writer.put_scalar(name="Trim/training_view_psnr", scalar=report.psnr, step=report.step)
        if report.scoring_seconds is not None:
            writer.put_scalar(name="Trim/score_pass_seconds", scalar=report.scoring_seconds, step=report.step)
        self.model.show_trim_progress()
