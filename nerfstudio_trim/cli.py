"""``ns-trim``: work with trimmed scenes outside ``ns-train``.

    ns-trim export --load-config RUN/config.yml --output-dir DIR   # as ns-export trimmed-splat
    ns-trim info FILE.nstrim                                       # header and size per attribute
    ns-trim decode FILE.nstrim --output scene.ply                  # standard 3DGS PLY
    ns-trim eval FILE.nstrim --data DATA                           # PSNR/SSIM/LPIPS on the eval views
    ns-trim compress RUN/config.yml|SCENE.ply --data DATA --output-dir DIR   # any 3DGS scene, no training
    ns-trim bench --baseline RUN/config.yml --data DATA            # the results table of one scene

Every failure is one ``error:`` line and exit status 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import tyro
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typing_extensions import Annotated

from nerfstudio_trim.bench import Bench
from nerfstudio_trim.core.codec.container import Limits
from nerfstudio_trim.core.codec.nstrim import attribute_rows, read_file, read_file_with_header
from nerfstudio_trim.core.files import check_output, make_dir
from nerfstudio_trim.core.codec.ply import ply_size, write_ply
from nerfstudio_trim.core.text import printable
from nerfstudio_trim.errors import install_excepthook

console = Console()


@dataclass
class Info:
    """Print a .nstrim file's header and how each attribute is coded and what it costs (the file is fully
    verified first)."""

    file: tyro.conf.Positional[Path]
    """The .nstrim file."""
    max_memory: Optional[float] = None
    """Most memory decoding may use (GiB); a file that needs more is refused before anything is allocated.
    Default: the memory available now."""

    def main(self) -> None:
        header, scene = read_file_with_header(self.file, Limits.with_memory(self.max_memory))  # all verified
        size, count = self.file.stat().st_size, scene.gaussians.count
        major, minor = header["version"]
        summary = (f": format {major}.{minor}, {count:,} Gaussians, SH degree {scene.sh_degree}, {size:,} bytes "
                   f"({size / max(count, 1):.1f} bytes per Gaussian)")  # fmt: skip
        console.print(Text.assemble((printable(self.file), "bold"), summary))
        table = Table("attribute", "coding", "stored bytes", "bytes/Gaussian", "share")
        rows = attribute_rows(header)
        for name, coding, stored in rows:
            cells = (name, coding, f"{stored:,}", f"{stored / max(count, 1):.2f}", f"{stored / size:.1%}")
            table.add_row(*(Text(printable(cell)) for cell in cells))
        overhead = size - sum(stored for _, _, stored in rows)
        table.add_row("header + preamble", "", f"{overhead:,}", f"{overhead / max(count, 1):.2f}", f"{overhead / size:.1%}")
        console.print(table)
        ply = ply_size(count, scene.sh_degree)
        print_plain(f"PLY of the same Gaussians: {ply:,} bytes ({ply / size:.1f}x larger)")
        print_plain(f"frame: {scene.frame}, dataparser scale {scene.dataparser_scale:.6g}, "
                    f"transform {[list(row) for row in scene.dataparser_transform]}")  # fmt: skip
        print_plain(f"render: background {list(scene.background)}, {scene.rasterize_mode}")
        if scene.source:
            print_plain(f"source: {printable(scene.source)}")


def print_plain(line: str) -> None:
    """Print one line as it is, not as rich markup, emoji codes or highlighted (it holds text from files
    and paths, already made ``printable``)."""
    console.print(Text(line))


@dataclass
class Decode:
    """Decode a .nstrim file to the standard 3D Gaussian Splatting PLY (nerfstudio's gaussian-splat layout)."""

    file: tyro.conf.Positional[Path]
    """The .nstrim file."""
    output: Path
    """The PLY to write (replaced atomically if it exists)."""
    max_memory: Optional[float] = None
    """Most memory decoding may use (GiB); a file that needs more is refused before anything is allocated.
    Default: the memory available now."""

    def main(self) -> None:
        check_output(self.output, self.file)
        scene = read_file(self.file, Limits.with_memory(self.max_memory))
        make_dir(self.output.parent)
        size = write_ply(self.output, scene.gaussians.dequantize(), scene.sh_degree)
        print_plain(f"wrote {printable(self.output)}: {scene.gaussians.count:,} Gaussians, {size:,} bytes")


def _export() -> type:
    from nerfstudio_trim.nerfstudio.export import ExportTrimmedSplat

    return ExportTrimmedSplat


def _evaluate() -> type:
    from nerfstudio_trim.nerfstudio.evaluate import EvaluateFile

    return EvaluateFile


def _compress() -> type:
    from nerfstudio_trim.nerfstudio.compress import Compress

    return Compress


def entrypoint() -> None:
    """The ``ns-trim`` console script."""
    install_excepthook()
    commands = Union[
        Annotated[_export(), tyro.conf.subcommand(name="export")],
        Annotated[Info, tyro.conf.subcommand(name="info")],
        Annotated[Decode, tyro.conf.subcommand(name="decode")],
        Annotated[_evaluate(), tyro.conf.subcommand(name="eval")],
        Annotated[_compress(), tyro.conf.subcommand(name="compress")],
        Annotated[Bench, tyro.conf.subcommand(name="bench")],
    ]
    tyro.cli(commands).main()  # type: ignore[call-overload]


if __name__ == "__main__":
    entrypoint()
