"""LPIPS that is built on first use and degrades to "not available" offline.

torchmetrics' LPIPS downloads torchvision's AlexNet weights when it is constructed; splatfacto builds
it in ``populate_modules``, so offline every ``ns-train``/``ns-eval`` crashes (design.md trap 5).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

from nerfstudio_trim.nerfstudio.console import warn


class LazyLPIPS(nn.Module):
    """Drop-in for ``LearnedPerceptualImagePatchSimilarity(**kwargs)``.

    Calling it builds the real metric the first time. If that fails (no network and no cached
    weights), it warns once and returns NaN from then on; ``available`` tells which.
    """

    def __init__(self, factory: Callable[..., nn.Module] = LearnedPerceptualImagePatchSimilarity, **kwargs: Any):
        super().__init__()
        self._factory = factory
        self._kwargs = kwargs
        self._metric: Optional[nn.Module] = None
        self._failed = False

    @property
    def available(self) -> bool:
        """False once building the metric has failed."""
        return not self._failed

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:
        if self._metric is None and not self._failed:
            try:
                # Kept out of the module tree (plain attribute): LPIPS weights are no model state
                # and must not end up in checkpoints.
                self.__dict__["_metric"] = self._factory(**self._kwargs)
            except Exception as exc:  # offline: URLError, OSError, RuntimeError from torch.hub
                self._failed = True
                warn(f"LPIPS is not available ({exc.__class__.__name__}: {exc}); reporting PSNR and SSIM only")
        if self._metric is None:
            return torch.tensor(float("nan"))
        return self._metric.to(preds.device)(preds, target)
