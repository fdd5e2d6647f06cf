"""Per-Gaussian importance scores, and which Gaussians a pruning round removes.

Modes:
- ``grad-norm`` (the seed method): for each of the parameter groups, the norm of a Gaussian's
  gradient of the training loss summed over all views; the score is the sum over groups.
- ``abs-grad``: the same norms taken per view and summed, so gradients of opposite sign in different
  views cannot cancel.
- ``opacity-grad-quantile`` ("Trimming the Fat"): a Gaussian is a candidate when its opacity and its
  grad-norm score are both below their gamma-quantiles, gamma_round = 1 - (1 - gamma_target)^(1/t).
- ``delta-mse``: how much the training images' squared error grows when the Gaussian alone is removed
  (exact, on any device; ``render_scores``).
- ``sensitivity`` (PUP 3D-GS): log det of the Fisher matrix of the pixel colours with respect to the
  Gaussian's mean and log-scale (``render_scores``).
- ``opacity`` and ``random``: baselines for ablations.
Memory stays O(number of Gaussians): gradients are summed in place, never stacked per view.
"""

from __future__ import annotations

from typing import Callable, Literal, Mapping, Optional, Sequence, get_args

import torch
from torch import Tensor

ScoreMode = Literal[
    "grad-norm", "abs-grad", "opacity-grad-quantile", "delta-mse", "sensitivity", "opacity", "random"
]
SCORE_MODES: Sequence[str] = get_args(ScoreMode)


def per_gaussian_norm(values: Tensor) -> Tensor:
    """L2 norm of each Gaussian's entries: [N, ...] -> [N]."""
    return values.reshape(values.shape[0], -1).norm(dim=1)


def accumulate_scores(
    params: Mapping[str, Tensor],
    view_loss: Callable[[int], Tensor],
    n_views: int,
    mode: Literal["grad-norm", "abs-grad"] = "grad-norm",
    on_view: Optional[Callable[[int], None]] = None,
) -> Tensor:
    """One pass over ``n_views`` training views (no optimizer step); one score per Gaussian.

    Args:
        params: the Gaussian parameter tensors [N, ...] (leaves with requires_grad), by group name.
        view_loss: the training loss of view i, computed from ``params``.
        n_views: number of views.
        mode: "grad-norm" (sum gradients over views, then norms) or "abs-grad" (norms per view, summed).
        on_view: called after each view (progress).

    Returns:
        [N] float32 scores; a Gaussian no view sees scores 0.
    """
    tensors = list(params.values())
    count = tensors[0].shape[0]
    sums = [torch.zeros_like(t) for t in tensors] if mode == "grad-norm" else None
    scores = torch.zeros(count, device=tensors[0].device)
    for view in range(n_views):
        grads = torch.autograd.grad(view_loss(view), tensors, allow_unused=True)
        for i, grad in enumerate(grads):
            if grad is None:
                continue
            if sums is not None:
                sums[i] += grad
            else:
                scores += per_gaussian_norm(grad)
        if on_view is not None:
            on_view(view)
    if sums is not None:
        for total in sums:
            scores += per_gaussian_norm(total)
    return scores


def gamma_per_round(gamma_target: float, rounds: int) -> float:
    """Quantile per round so that ``rounds`` rounds remove ``gamma_target`` of the Gaussians."""
    return 1.0 - (1.0 - gamma_target) ** (1.0 / rounds)


def quantile_candidates(scores: Tensor, opacities: Tensor, gamma: float) -> Tensor:
    """[N] bool: opacity below its gamma-quantile and score below its gamma-quantile (exact, linearly
    interpolated; any N with torch >= 2.14, whose quantile no longer stops at 2^24 entries)."""
    return (opacities < torch.quantile(opacities, gamma)) & (scores < torch.quantile(scores, gamma))


def removal_mask(scores: Tensor, n_remove: int, candidates: Optional[Tensor] = None) -> Tensor:
    """[N] bool marking the ``n_remove`` lowest scores (among ``candidates`` only, if given).

    Ties are broken by index, so the choice is deterministic.
    """
    masked = scores if candidates is None else torch.where(candidates, scores, torch.full_like(scores, float("inf")))
    available = scores.numel() if candidates is None else int(candidates.sum())
    order = torch.argsort(masked, stable=True)[: min(n_remove, available)]
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[order] = True
    return mask
