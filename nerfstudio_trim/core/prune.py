"""Removing and restoring Gaussians consistently in parameters, optimizer state and strategy state.

Parameters keep their identity (``param.data`` is replaced), so optimizers built before keep stepping
them; every per-Gaussian tensor in an optimizer's state (Adam's moments) or in a densification
strategy's state is cut or extended the same way.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, MutableMapping, Optional

import torch
from torch import Tensor


def _resize(
    params: Mapping[str, Tensor],
    optimizers: Mapping[str, torch.optim.Optimizer],
    strategy_state: Optional[MutableMapping[str, Any]],
    change: Callable[[str, Tensor, bool], Tensor],
) -> None:
    """Apply ``change(group, tensor, is_parameter)`` to every per-Gaussian tensor."""
    count = next(iter(params.values())).shape[0]
    for name, param in params.items():
        optimizer = optimizers.get(name)
        moments = optimizer.state.get(param, {}) if optimizer is not None else {}
        for key, value in list(moments.items()):
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == count:
                moments[key] = change(name, value, False)
        param.data = change(name, param.data, True)
        param.grad = None
    for key, value in (strategy_state or {}).items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == count:
            strategy_state[key] = change(key, value, False)


@torch.no_grad()
def remove_gaussians(
    params: Mapping[str, Tensor],
    optimizers: Mapping[str, torch.optim.Optimizer],
    remove: Tensor,
    strategy_state: Optional[MutableMapping[str, Any]] = None,
) -> Dict[str, Tensor]:
    """Remove the Gaussians marked in ``remove`` ([N] bool); returns their parameter values."""
    keep = ~remove
    removed = {name: param.data[remove].clone() for name, param in params.items()}
    _resize(params, optimizers, strategy_state, lambda name, value, is_param: value[keep])
    return removed


@torch.no_grad()
def append_gaussians(
    params: Mapping[str, Tensor],
    optimizers: Mapping[str, torch.optim.Optimizer],
    values: Mapping[str, Tensor],
    strategy_state: Optional[MutableMapping[str, Any]] = None,
) -> None:
    """Append Gaussians with the given parameter values (optimizer moments start at zero)."""

    def extend(name: str, value: Tensor, is_param: bool) -> Tensor:
        new = values[name].to(value) if is_param else value.new_zeros((len(next(iter(values.values()))), *value.shape[1:]))
        return torch.cat([value, new])

    _resize(params, optimizers, strategy_state, extend)
