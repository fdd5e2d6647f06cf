"""The run's configured optimizer settings, over what ``--load-checkpoint`` restored.

nerfstudio 1.1.5's trainer restores every optimizer's state dict from a loaded checkpoint
(``Optimizers.load_optimizers``), and with it each parameter group's learning rate, ``eps`` and weight
decay, and every scheduler's state, its base learning rates included. So ``--optimizers.<group>.optimizer.lr``
given to a run that loads a checkpoint is written to its config.yml and then ignored: a trim would fine-tune
with the learning rates the checkpoint was trained with, whatever its config says. ``apply_configured_settings``
puts the config's values back: the trainer builds the training callbacks right after loading, which is where
the model calls it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from nerfstudio.engine.optimizers import OptimizerConfig, Optimizers


def configured_settings(config: OptimizerConfig) -> Dict[str, Any]:
    """The keyword arguments ``config`` builds its torch optimizer with (``OptimizerConfig.setup``): ``lr``,
    ``eps``, ``weight_decay``, ... (not ``max_norm``, which nerfstudio applies itself when clipping)."""
    return {key: value for key, value in vars(config).items() if key not in ("_target", "max_norm")}


def apply_configured_settings(optimizers: Optimizers, learning_rates: Mapping[str, float] = {}) -> List[str]:
    """Set every parameter group's optimizer settings to the run's config, with the learning rates of the groups
    named in ``learning_rates`` replaced by those (the trim's own); returns one line per change
    (``"features_rest lr 0.000125 -> 0.001"``), empty when the optimizers already hold these values
    (a run that loaded nothing, or a checkpoint trained with the same settings).

    A group with a learning-rate scheduler keeps its place in the schedule: its current rate is scaled by
    configured / restored base rate (exact for every multiplicative schedule, as nerfstudio's are: the rate is
    the base rate times a factor of the step), and the scheduler's base rate becomes the configured one.
    """
    changes: List[str] = []
    for name, optimizer in optimizers.optimizers.items():
        settings = configured_settings(optimizers.config[name]["optimizer"])
        settings["lr"] = learning_rates.get(name, settings["lr"])
        scheduler = optimizers.schedulers.get(name)
        for index, group in enumerate(optimizer.param_groups):
            for key, value in settings.items():
                if key == "lr" and scheduler is not None:
                    restored = scheduler.base_lrs[index]
                    if restored != value:
                        group["lr"] = group["lr"] * value / restored if restored else value
                        group["initial_lr"] = scheduler.base_lrs[index] = value
                        changes.append(f"{name} lr {shown(restored)} -> {shown(value)} (scheduled)")
                elif key in group and group[key] != value:
                    changes.append(f"{name} {key} {shown(group[key])} -> {shown(value)}")
                    group[key] = value
    return changes


def shown(value: Any) -> str:
    """A setting as a user would type it: numbers in the shortest form (``1e-15``, ``0.001``)."""
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
