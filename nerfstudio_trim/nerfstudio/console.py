"""Console output for the plugin layer (nerfstudio's rich console)."""

from __future__ import annotations

from nerfstudio.utils.rich_utils import CONSOLE


def warn(message: str) -> None:
    """One yellow warning line."""
    CONSOLE.print(f"[bold yellow]warning:[/bold yellow] {message}", highlight=False)
