"""Removing and restoring Gaussians consistently in parameters, optimizer state and strategy state.

Each parameter is replaced by a new ``nn.Parameter`` of the new size, rebound in the parameter mapping
and in its optimizer, which keeps its state (Adam's moments) cut or extended the same way; so is every
per-Gaussian tensor of a densification strategy's state. (Resizing ``param.data`` in place is not
safe once a forward pass has run: autograd caches each leaf's shape while a graph is alive.)
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, MutableMapping, Optional

import torch
from torch import Tensor


def _resize(
    params: MutableMapping[str, Tensor],
    optimizers: Mapping[str, torch.optim.Optimizer],
    strategy_state: Optional[MutableMapping[str, Any]],
    change: Callable[[str, Tensor, bool], Tensor],
) -> None:
    """Apply ``change(group, tensor, is_parameter)`` to every per-Gaussian tensor."""
    count = next(iter(params.values())).shape[0]
    for name, param in list(params.items()):
        new_param = torch.nn.Parameter(change(name, param.detach(), True), requires_grad=param.requires_grad)
        optimizer = optimizers.get(name)
        if optimizer is not None:
            moments = optimizer.state.pop(param, {})
            for key, value in list(moments.items()):
                if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == count:
                    moments[key] = change(name, value, False)
            for group in optimizer.param_groups:
                group["params"] = [new_param if p is param else p for p in group["params"]]
            if moments:
                optimizer.state[new_param] = moments
        params[name] = new_param
    for key, value in (strategy_state or {}).items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == count:
            strategy_state[key] = change(key, value, False)


@torch.no_grad()
def remove_gaussians(
    params: MutableMapping[str, Tensor],
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
    params: MutableMapping[str, Tensor],
    optimizers: Mapping[str, torch.optim.Optimizer],
    values: Mapping[str, Tensor],
    strategy_state: Optional[MutableMapping[str, Any]] = None,
) -> None:
    """Append Gaussians with the given parameter values (optimizer moments start at zero)."""

    def extend(name: str, value: Tensor, is_param: bool) -> Tensor:
        new = values[name].to(value) if is_param else value.new_zeros((len(next(iter(values.values()))), *value.shape[1:]))
        return torch.cat([value, new])

    _resize(params, optimizers, strategy_state, extend)
