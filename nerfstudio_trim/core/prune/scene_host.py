"""The pruning loop's host for a scene held as plain tensors, without training (``ns-trim compress``).

``SceneHost`` answers ``core.prune.run.PruningHost`` from splatfacto-named parameters, the training views
(``ScoringView``; there may be none) and the codec: every measurement is of what the file would hold, the
Gaussians quantized as ``CodecSettings`` codes them, with each Gaussian's bands above its SH degree zeroed.
Nothing is fine-tuned, so a round's check follows its removal at once.

Examples:
    >>> host = SceneHost(params, scene, views)               # scene: frame, background, ... of the file
    >>> run = PruningRun(TrimSchedule(steps_per_round=0, final_steps=0, target_fraction=0.25), host)
    >>> run.begin(0)
    >>> while not run.done:
    ...     run.advance(0)
    >>> data = encode(host.scene())
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from typing import Callable, ContextManager, Dict, Iterator, Literal, Mapping, Optional, Sequence

import torch
from torch import Tensor

from nerfstudio_trim.core.codec.nstrim import encode
from nerfstudio_trim.core.prune.render_scores import ScoringView, delta_mse_scores, sensitivity_scores
from nerfstudio_trim.core.prune.run import RoundReport, Scores
from nerfstudio_trim.core.quantize.gaussians import CodecSettings, quantize_gaussians
from nerfstudio_trim.core.quantize.sh_compaction import ViewCameras, compact_sh, with_sh_degrees
from nerfstudio_trim.core.raster.cpu_raster import RasterizeMode
from nerfstudio_trim.core.raster.render import over_background, rasterize_parameters
from nerfstudio_trim.core.scene import SplatScene, sh_degree_of

SceneScoreMode = Literal["abs-delta-mse", "delta-mse", "sensitivity", "opacity", "opacity-volume"]
VIEW_FREE_SCORE_MODES = ("opacity", "opacity-volume")
"""Score modes that need no training view."""
ProgressFactory = Callable[[str, int], ContextManager[Callable[[], None]]]
"""``progress(description, total)``: a context giving a function to call once per unit of work done."""


@contextlib.contextmanager
def no_progress(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A ``ProgressFactory`` that shows nothing."""
    yield lambda: None


def opacity_volume_scores(params: Mapping[str, Tensor]) -> Tensor:
    """[N] log(opacity x volume), volume the product of the three scales: the view-free rule.

    Without views nothing says which Gaussians the images need; what bounds a Gaussian's contribution to any
    image is its opacity (how much it covers) and its size (how many pixels it covers, from any distance).
    A faint, small Gaussian changes little in any view, so it goes first. Weaker than the rules that render
    the views: it cannot see that a Gaussian is hidden behind others, or that a small one carries detail.
    Taken as a logarithm (the same order) so that tiny volumes do not underflow."""
    log_opacity = torch.nn.functional.logsigmoid(params["opacities"].detach().reshape(-1))
    return log_opacity + params["scales"].detach().sum(dim=-1)


def view_cameras(views: Sequence[ScoringView]) -> ViewCameras:
    """The views' cameras, for SH compaction."""
    return ViewCameras(
        torch.stack([view.viewmat for view in views]), torch.stack([view.K for view in views]),
        torch.tensor([float(view.width) for view in views], device=views[0].viewmat.device),
        torch.tensor([float(view.height) for view in views], device=views[0].viewmat.device),
    )  # fmt: skip


@dataclass(frozen=True)
class ViewFit:
    """How a scene renders over views (means over the views)."""

    psnr: float
    """PSNR of the render over the view's background (dB)."""
    coverage: float
    """Fraction of the pixels the Gaussians cover (mean alpha, 0-1)."""
    correlation: float
    """Correlation of the render's brightness (mean of R, G, B) with the image's, over the pixels (-1 to 1): near 1
    where the scene shows what the images show, near 0 where it is elsewhere or seen from elsewhere, whatever the
    colours (so a poor but well-placed scene still scores well)."""


def psnr(image: Tensor, target: Tensor) -> float:
    """PSNR (dB) of two images in [0, 1]."""
    return -10.0 * math.log10(float(torch.mean((image - target) ** 2).clamp(min=1e-12)))


def brightness_correlation(image: Tensor, target: Tensor) -> float:
    """Pearson correlation of two [H, W, 3] images' brightness over their pixels (0 where either is flat)."""
    x, y = image.mean(dim=-1).flatten(), target.mean(dim=-1).flatten()
    x, y = x - x.mean(), y - y.mean()
    norms = float(x.norm() * y.norm())
    return float((x * y).sum()) / norms if norms > 0 else 0.0


@torch.no_grad()
def view_fit(
    params: Mapping[str, Tensor],
    views: Sequence[ScoringView],
    rasterize_mode: RasterizeMode = "classic",
    on_view: Callable[[], None] = lambda: None,
) -> ViewFit:
    """Render splatfacto parameters (all their SH degree) over each view's background, as splatfacto does,
    and compare with the views' images; ``on_view`` after each view (progress)."""
    sh_degree = sh_degree_of(params["features_rest"])
    fits = []
    for view in views:
        colours, alpha, _ = rasterize_parameters(
            params, view.viewmat[None], view.K[None], view.width, view.height, sh_degree, rasterize_mode=rasterize_mode
        )
        image = over_background(colours[0, ..., :3], alpha[0], view.background)
        fits.append((psnr(image, view.image), float(alpha.mean()), brightness_correlation(image, view.image)))
        on_view()
    count = max(1, len(fits))
    return ViewFit(*(sum(fit[i] for fit in fits) / count for i in range(3)))


class SceneHost:
    """A scene's Gaussians as the pruning loop's host (see the module docstring)."""

    def __init__(
        self,
        params: Mapping[str, Tensor],
        scene: SplatScene,
        views: Sequence[ScoringView] = (),
        codec: CodecSettings = CodecSettings(),
        score_mode: SceneScoreMode = "abs-delta-mse",
        sh_compaction_tolerance: Optional[float] = 1.0 / 255,
        sh_degrees: Optional[Tensor] = None,
        on_report: Callable[[RoundReport], None] = lambda report: None,
        progress: ProgressFactory = no_progress,
    ):
        """
        Args:
            params: splatfacto's parameters (means [N, 3], log scales [N, 3], quats [N, 4], opacity logits
                [N, 1], features_dc [N, 3], features_rest [N, K, 3]); copied, on their device.
            scene: what the file holds besides the Gaussians (frame, dataparser transform and scale,
                background, rasterize mode, source); ``scene()`` is it with the host's Gaussians and SH degree.
            views: the training views in the scene's frame (scores, SH compaction, training-view PSNR).
            codec: how the file quantizes the Gaussians (every measurement is of those values).
            score_mode: abs-delta-mse or delta-mse (exact; ``scores``), sensitivity and opacity, or, without
                views, opacity-volume.
            sh_compaction_tolerance: SH compaction after each change (``compact_sh``; needs views); None: off.
            sh_degrees: [N] int64 SH degree of each Gaussian (its higher bands above it are zero in the
                file), e.g. from an earlier compaction; None: all of them at the scene's degree.
            on_report: shows or logs each decision.
            progress: the score and PSNR passes' progress, one unit per view.
        """
        if score_mode not in VIEW_FREE_SCORE_MODES and not views:
            raise ValueError(f"score mode {score_mode} renders the training views: there are none")
        self.params: Dict[str, Tensor] = {name: value.detach().clone() for name, value in params.items()}
        self.template, self.views, self.codec = scene, list(views), codec
        self.score_mode, self.tolerance = score_mode, sh_compaction_tolerance
        self.sh_degree = sh_degree_of(self.params["features_rest"])
        device = self.params["means"].device
        self.sh_degrees = (torch.full((self.count,), self.sh_degree, dtype=torch.int64, device=device)
                           if sh_degrees is None else sh_degrees.to(device=device, dtype=torch.int64))  # fmt: skip
        self.on_report, self.progress = on_report, progress
        self.removed: Optional[Dict[str, Tensor]] = None
        self.rasterize_mode: RasterizeMode = "antialiased" if scene.rasterize_mode == "antialiased" else "classic"

    @property
    def count(self) -> int:
        return int(self.params["means"].shape[0])

    def records(self) -> Dict[str, Tensor]:
        """The per-Gaussian tensors that follow the Gaussians through removal: parameters and SH degrees."""
        return {**self.params, "sh_degrees": self.sh_degrees}

    def file_parameters(self, keep: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """The parameters the file stores before quantization (bands above each Gaussian's degree zeroed), of
        all Gaussians or of those the [N] bool ``keep`` marks."""
        params = with_sh_degrees(self.params, self.sh_degrees)
        return params if keep is None else {name: value[keep] for name, value in params.items()}

    def coded_parameters(self) -> Dict[str, Tensor]:
        """What the file decodes to now (float32, splatfacto's names)."""
        return quantize_gaussians(self.file_parameters(), self.codec).dequantize()

    def scene(self, keep: Optional[Tensor] = None) -> SplatScene:
        """The file's scene now (of the Gaussians ``keep`` marks, if given)."""
        gaussians = quantize_gaussians(self.file_parameters(keep), self.codec)
        return replace(self.template, gaussians=gaussians, sh_degree=self.sh_degree)

    def scores(self) -> Scores:
        """One score per Gaussian (higher is more important), of the values the file holds.

        ``abs-delta-mse`` ranks by the magnitude of the exact delta-mse: without fine-tuning, a Gaussian whose
        removal alone lowers the error (a negative delta-mse) is most often one of a layer of Gaussians that
        make up for each other, and removing those together raises the error a lot. On the demo scene (8
        views, one score pass), removing 2% / 10% / 30% of the Gaussians by their signed delta-mse cost 0.96 /
        2.34 / 2.89 dB of training-view PSNR, by its magnitude 0.00 / 0.00 / 0.13 dB."""
        params = self.coded_parameters()
        if self.score_mode == "opacity":
            return Scores(torch.sigmoid(params["opacities"]).flatten())
        if self.score_mode == "opacity-volume":
            return Scores(opacity_volume_scores(params))
        with self.progress("scoring Gaussians, view", len(self.views)) as advance:
            if self.score_mode == "sensitivity":
                values = sensitivity_scores(params, self.views, self.sh_degree, rasterize_mode=self.rasterize_mode,
                                            on_view=lambda _: advance())  # fmt: skip
            else:
                values = delta_mse_scores(params, self.views, self.sh_degree, rasterize_mode=self.rasterize_mode,
                                          method="exact", on_view=lambda _: advance())  # fmt: skip
        return Scores(values.abs() if self.score_mode == "abs-delta-mse" else values)

    def remove(self, mask: Tensor) -> None:
        records = self.records()
        self.removed = {name: value[mask] for name, value in records.items()}
        self._set_records({name: value[~mask] for name, value in records.items()})

    def restore(self) -> None:
        if self.removed is None:
            return
        records = self.records()
        self._set_records({name: torch.cat([value, self.removed[name]]) for name, value in records.items()})

    def _set_records(self, records: Dict[str, Tensor]) -> None:
        self.sh_degrees = records.pop("sh_degrees")
        self.params = records

    def forget(self) -> None:
        self.removed = None

    def settle(self) -> None:
        """SH compaction (``sh_compaction_tolerance``) towards the views' cameras: each Gaussian gets the lowest
        SH degree that keeps its colours towards the cameras that see it; its bands above are zero from now on."""
        if self.tolerance is None or self.sh_degree == 0 or not self.views or self.count == 0:
            return
        stored = self.file_parameters()
        result = compact_sh(stored["features_dc"], stored["features_rest"], stored["means"], view_cameras(self.views),
                            self.tolerance)  # fmt: skip
        self.params["features_dc"], self.params["features_rest"] = result.features_dc, result.features_rest
        self.sh_degrees = torch.minimum(self.sh_degrees, result.degrees)

    def training_psnr(self) -> float:
        """Mean PSNR (dB) over the views of what the file decodes to."""
        if not self.views:
            raise ValueError("no training views to measure the PSNR on")
        with self.progress("training-view PSNR, view", len(self.views)) as advance:
            return view_fit(self.coded_parameters(), self.views, self.rasterize_mode, on_view=advance).psnr

    def file_bytes(self, keep: Optional[Tensor] = None) -> int:
        """Exact size of the file of the Gaussians now (of those the [N] bool ``keep`` marks, if given)."""
        return len(encode(self.scene(keep)))

    def report(self, report: RoundReport) -> None:
        self.on_report(report)

