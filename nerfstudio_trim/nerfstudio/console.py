"""Console output for the plugin layer (nerfstudio's rich console)."""

from __future__ import annotations

from nerfstudio.utils.rich_utils import CONSOLE
from rich.text import Text

from nerfstudio_trim.core.text import printable


def warn(message: str) -> None:
    """One yellow warning line; ``message`` is shown as plain text (``printable``), never as markup."""
    CONSOLE.print(Text.assemble(("warning:", "bold yellow"), " ", printable(message, max_chars=1000)))
