"""Runs the trimming schedule inside ``ns-train``: score passes, pruning rounds, quality checks.

``Trimmer`` is driven by a training callback of ``SplatfactoTrimModel`` before each iteration. It reads
the training views from nerfstudio's full-image datamanager; the decisions come from
``core.schedule.TrimSchedule``; the tensors change through ``core.prune``.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn

from nerfstudio_trim.core.prune.removal import append_gaussians, remove_gaussians
from nerfstudio_trim.core.prune.render_scores import ScoringView, delta_mse_scores, sensitivity_scores
from nerfstudio_trim.core.prune.schedule import Action, TrimState
from nerfstudio_trim.core.prune.scores import accumulate_scores, gamma_per_round, quantile_candidates, removal_mask
from nerfstudio_trim.nerfstudio.trim_config import TrimConfig


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


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode (fixed background, no camera optimizer, full resolution), then back."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def scoring_views(model: Any, views: TrainingViews) -> Iterator[ScoringView]:
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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=CONSOLE, transient=True,
    )  # fmt: skip


class Trimmer:
    """State and actions of one trim run (see ``core.schedule`` for the decisions)."""

    def __init__(self, config: TrimConfig):
        self.config = config  # the options, which are also the schedule (TrimConfig extends TrimSchedule)
        self.state: Optional[TrimState] = None
        self.removed: Optional[Dict[str, Tensor]] = None  # Gaussians of the last round, for a rollback
        self.last_scores: Optional[Tensor] = None  # scores of the kept Gaussians at the last round
        self._colours: Optional[Tuple[Tensor, Tensor]] = None  # (last_scores, their score_colours)

    @property
    def active(self) -> bool:
        """True from the first trim step on (quantization-aware rendering, no densification)."""
        return self.state is not None

    def extra_state(self) -> Dict[str, Any]:
        """What a checkpoint must hold to resume mid-trim."""
        return {"trim_state": None if self.state is None else self.state.to_dict(), "removed": self.removed}

    def load_extra_state(self, values: Dict[str, Any]) -> None:
        state = values.get("trim_state")
        self.state = None if state is None else TrimState.from_dict(state)
        self.removed = values.get("removed")

    def remaining_steps(self, step: int, count: int) -> int:
        """Upper bound on the training steps left from ``step`` for a model of ``count`` Gaussians."""
        done = 0 if self.state is None else self.state.rounds
        rounds = self.config.max_rounds - done
        if self.config.score_mode != "opacity-grad-quantile":  # the quantile rule may remove less per round
            rounds = min(rounds, self.config.rounds_to_target(count))
        ahead = 0 if self.state is None else max(0, self.state.next_step - step)
        return ahead + (rounds + 1) * self.config.steps_per_round + self.config.final_steps + 1

    def step(self, model: Any, views: TrainingViews, step: int, trainer: Any) -> None:
        """Called before training iteration ``step``: start, prune, check quality or stop when due."""
        if self.state is None:
            reference = self.training_psnr(model, views) if self.config.max_psnr_drop is not None else None
            self.state = self.config.begin(step, model.num_points, reference)
            CONSOLE.print(
                f"[bold]trim[/bold]: {model.num_points:,} Gaussians loaded"
                + (f", training-view PSNR {reference:.2f} dB" if reference is not None else "")
            )
        if not self.config.is_due(self.state, step):
            return
        psnr = self.training_psnr(model, views) if self.config.needs_quality_check(self.state) else None
        action, keep, self.state = self.config.decide(self.state, step, model.num_points, psnr)
        scoring_seconds = None
        if action == Action.PRUNE:
            started = time.perf_counter()
            scores = self.scores(model, views)
            scoring_seconds = time.perf_counter() - started
            remove = self.removal(model, scores, model.num_points - keep)
            self.removed = remove_gaussians(model.gauss_params, model.optimizers, remove, model.strategy_state)
            self.last_scores = scores[~remove]
        elif action == Action.ROLLBACK:
            if self.removed is not None:
                append_gaussians(model.gauss_params, model.optimizers, self.removed, model.strategy_state)
            self.removed = None
        elif action == Action.FINAL:
            self.removed = None
        else:
            trainer.stop_training = True
        self.report(model, step, action, psnr, scoring_seconds)

    def score_colours(self, count: int) -> Optional[Tensor]:
        """[N, 1] the last round's scores as log-scaled values in [0, 1] for a heat-map (1st to 99th
        percentile), or None when there are none for the current ``count`` Gaussians. Computed once per
        round, not per rendered frame."""
        scores = self.last_scores
        if scores is None or scores.shape[0] != count or count == 0:
            return None
        if self._colours is None or self._colours[0] is not scores:
            logs = torch.log10(scores.clamp(min=1e-12))
            low, high = torch.quantile(logs, logs.new_tensor([0.01, 0.99]))  # one sort; any size (torch >= 2.14)
            self._colours = (scores, ((logs - low) / (high - low).clamp(min=1e-6)).clamp(0, 1)[:, None])
        return self._colours[1]

    def scores(self, model: Any, views: TrainingViews) -> Tensor:
        """One score per Gaussian, by the configured mode."""
        mode = self.config.score_mode
        if mode == "opacity":
            return torch.sigmoid(model.gauss_params["opacities"].detach()).flatten()
        if mode == "random":
            generator = torch.Generator().manual_seed(self.config.seed + (self.state.rounds if self.state else 0))
            return torch.rand(model.num_points, generator=generator).to(model.device)
        with evaluating(model), _progress() as progress:
            task = progress.add_task("scoring Gaussians", total=len(views))
            if mode in ("delta-mse", "sensitivity"):
                with torch.no_grad():
                    params = model.render_parameters()
                score = delta_mse_scores if mode == "delta-mse" else sensitivity_scores
                return score(
                    params, scoring_views(model, views), model.config.sh_degree,
                    active_sh_degree=min(model.step // model.config.sh_degree_interval, model.config.sh_degree),
                    rasterize_mode=model.config.rasterize_mode, on_view=lambda _: progress.advance(task),
                )  # fmt: skip

            def view_loss(index: int) -> Tensor:
                camera, batch = views[index]
                return model.get_loss_dict(model.get_outputs(camera), batch)["main_loss"]

            return accumulate_scores(
                dict(model.gauss_params), view_loss, len(views),
                mode="abs-grad" if mode == "abs-grad" else "grad-norm",
                on_view=lambda _: progress.advance(task),
            )  # fmt: skip

    def removal(self, model: Any, scores: Tensor, count: int) -> Tensor:
        """[N] bool: the ``count`` Gaussians to remove (fewer if the quantile rule offers fewer)."""
        if self.config.score_mode != "opacity-grad-quantile":
            return removal_mask(scores, count)
        gamma = gamma_per_round(self.config.quantile_gamma_target, self.config.quantile_rounds)
        opacities = torch.sigmoid(model.gauss_params["opacities"].detach()).flatten()
        return removal_mask(scores, count, quantile_candidates(scores, opacities, gamma))

    @torch.no_grad()
    def training_psnr(self, model: Any, views: TrainingViews) -> float:
        """Mean PSNR (dB) over the training views, rendered as in eval mode."""
        total = 0.0
        with evaluating(model), _progress() as progress:
            task = progress.add_task("training-view PSNR", total=len(views))
            for index in range(len(views)):
                camera, batch = views[index]
                outputs = model.get_outputs(camera)
                target = model.composite_with_background(model.get_gt_img(batch["image"]), outputs["background"])
                mse = torch.mean((outputs["rgb"] - target) ** 2).clamp(min=1e-12)
                total += -10.0 * math.log10(float(mse))
                progress.advance(task)
        return total / max(1, len(views))

    def report(
        self, model: Any, step: int, action: Action, psnr: Optional[float], scoring_seconds: Optional[float]
    ) -> None:
        """One console line and scalars for nerfstudio's writers (tensorboard, wandb)."""
        assert self.state is not None
        count, initial = model.num_points, self.state.initial_count
        size_mb = count * self.config.bytes_per_gaussian / 1e6
        quality = f", training-view PSNR {psnr:.2f} dB" if psnr is not None else ""
        quality += f", scored in {scoring_seconds:.1f} s" if scoring_seconds is not None else ""
        CONSOLE.print(
            f"[bold]trim[/bold] step {step}: {action.value} (round {self.state.rounds}) -> {count:,} Gaussians, "
            f"{count / initial:.1%} kept, ~{size_mb:.2f} MB{quality}"
        )
        # Imported here: nerfstudio.utils.writer and nerfstudio.configs.base_config import each other,
        # so importing the writer first (this module on its own) would fail.
        from nerfstudio.utils import writer

        model.viewer_gaussians.value = count
        model.viewer_size_mb.value = round(size_mb, 3)
        writer.put_scalar(name="Trim/gaussians", scalar=count, step=step)
        writer.put_scalar(name="Trim/fraction_kept", scalar=count / initial, step=step)
        writer.put_scalar(name="Trim/estimated_size_mb", scalar=size_mb, step=step)
        if psnr is not None:
            writer.put_scalar(name="Trim/training_view_psnr", scalar=psnr, step=step)
        if scoring_seconds is not None:
            writer.put_scalar(name="Trim/score_pass_seconds", scalar=scoring_seconds, step=step)
