"""``ns-export trimmed-splat``: our exporter among nerfstudio's ``ns-export`` subcommands.

nerfstudio 1.1.5 has no plugin hook for exporters: ``ns-export``'s subcommands are a fixed union
(``nerfstudio/scripts/exporter.py``, ``Commands``) passed to ``tyro.cli``. Its module imports the method
plugins (through ``eval_utils`` -> ``method_configs``) before it defines that union, so when this
plugin is imported there, ``install`` hands the module a ``tyro`` whose ``cli`` adds ``trimmed-splat``
to whatever union it is given. Every step is guarded: if nerfstudio changes shape, ``ns-export`` runs
unchanged (``ns-trim export`` stays), it never breaks.
"""

from __future__ import annotations

import sys
import typing
from typing import Any, Union

import tyro
from typing_extensions import Annotated

SUBCOMMAND = "trimmed-splat"
EXPORTER_MODULE = "nerfstudio.scripts.exporter"


def with_trimmed_splat(commands: Any) -> Any:
    """``commands`` (``Annotated[Union[Annotated[Exporter, subcommand], ...], markers...]``) with
    ``trimmed-splat`` added; returned unchanged when it has another shape or already has it."""
    try:
        if typing.get_origin(commands) is not Annotated:
            return commands
        union, *markers = typing.get_args(commands)
        if typing.get_origin(union) is not Union or SUBCOMMAND in str(union):
            return commands
        from nerfstudio_trim.nerfstudio.export import ExportTrimmedSplat

        ours = Annotated[ExportTrimmedSplat, tyro.conf.subcommand(name=SUBCOMMAND)]
        return Annotated[(Union[(*typing.get_args(union), ours)], *markers)]
    except Exception:  # never let our hook break ns-export
        return commands


class _TyroAddingTrimmedSplat:
    """``tyro`` as ns-export's module sees it: ``cli`` adds ``trimmed-splat``, all else is tyro's."""

    def __init__(self, module: Any):
        self._tyro = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tyro, name)

    def cli(self, f: Any, *args: Any, **kwargs: Any) -> Any:
        return self._tyro.cli(with_trimmed_splat(f), *args, **kwargs)


def install() -> None:
    """Add ``trimmed-splat`` to ``ns-export`` if its module is loading or loaded; otherwise do nothing."""
    module = sys.modules.get(EXPORTER_MODULE)
    if module is None:
        return
    if hasattr(module, "Commands"):  # already fully imported
        module.Commands = with_trimmed_splat(module.Commands)
    elif getattr(module, "tyro", None) is tyro:  # mid-import: it has imported tyro, not yet built Commands
        module.tyro = _TyroAddingTrimmedSplat(tyro)
