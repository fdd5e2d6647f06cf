"""``ns-trim``: work with trimmed scenes outside ``ns-train``.

    ns-trim export --load-config RUN/config.yml --output-dir DIR   # as ns-export trimmed-splat
    ns-trim info FILE.nstrim                                       # header and size per attribute
    ns-trim decode FILE.nstrim --output scene.ply                  # standard 3DGS PLY
    ns-trim eval FILE.nstrim --data DATA                           # PSNR/SSIM/LPIPS on the eval views
    ns-trim bench --baseline RUN/config.yml --data DATA            # the results table of one scene

Every failure is one ``error:`` line and exit status 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import tyro
from rich.console import Console
from rich.table import Table
from typing_extensions import Annotated

from nerfstudio_trim.bench import Bench
from nerfstudio_trim.core.codec.nstrim import attribute_rows, read_file, read_file_with_header
from nerfstudio_trim.core.files import check_writable, make_dir
from nerfstudio_trim.core.codec.ply import ply_size, write_ply
from nerfstudio_trim.errors import install_excepthook

console = Console()


@dataclass
class Info:
    """Print a .nstrim file's header and how each attribute is coded and what it costs (the file is fully
    verified first)."""

    file: tyro.conf.Positional[Path]
    """The .nstrim file."""

    def main(self) -> None:
        header, scene = read_file_with_header(self.file)  # checksums, schema, limits and every stream verified
        size, count = self.file.stat().st_size, scene.gaussians.count
        major, minor = header["version"]
        console.print(f"{self.file}: format {major}.{minor}, {count:,} Gaussians, SH degree {scene.sh_degree}, "
                      f"{size:,} bytes ({size / max(count, 1):.1f} bytes per Gaussian)", markup=False, highlight=False)  # fmt: skip
        table = Table("attribute", "coding", "stored bytes", "bytes/Gaussian", "share")
        rows = attribute_rows(header)
        for name, coding, stored in rows:
            table.add_row(name, coding, f"{stored:,}", f"{stored / max(count, 1):.2f}", f"{stored / size:.1%}")
        overhead = size - sum(stored for _, _, stored in rows)
        table.add_row("header + preamble", "", f"{overhead:,}", f"{overhead / max(count, 1):.2f}", f"{overhead / size:.1%}")
        console.print(table)
        ply = ply_size(count, scene.sh_degree)
        console.print(f"PLY of the same Gaussians: {ply:,} bytes ({ply / size:.1f}x larger)", highlight=False)
        console.print(f"frame: {scene.frame}, dataparser scale {scene.dataparser_scale:.6g}, "
                      f"transform {[list(row) for row in scene.dataparser_transform]}", markup=False, highlight=False)  # fmt: skip
        console.print(f"render: background {list(scene.background)}, {scene.rasterize_mode}", markup=False, highlight=False)
        if scene.source:
            console.print(f"source: {scene.source}", markup=False, highlight=False)


@dataclass
class Decode:
    """Decode a .nstrim file to the standard 3D Gaussian Splatting PLY (nerfstudio's gaussian-splat layout)."""

    file: tyro.conf.Positional[Path]
    """The .nstrim file."""
    output: Path
    """The PLY to write (replaced atomically if it exists)."""

    def main(self) -> None:
        check_writable(self.output.parent)
        scene = read_file(self.file)
        make_dir(self.output.parent)
        size = write_ply(self.output, scene.gaussians.dequantize(), scene.sh_degree)
        console.print(f"wrote {self.output}: {scene.gaussians.count:,} Gaussians, {size:,} bytes", highlight=False)


def _export() -> type:
    from nerfstudio_trim.nerfstudio.export import ExportTrimmedSplat

    return ExportTrimmedSplat


def _evaluate() -> type:
    from nerfstudio_trim.nerfstudio.evaluate import EvaluateFile

    return EvaluateFile


def entrypoint() -> None:
    """The ``ns-trim`` console script."""
    install_excepthook()
    commands = Union[
        Annotated[_export(), tyro.conf.subcommand(name="export")],
        Annotated[Info, tyro.conf.subcommand(name="info")],
        Annotated[Decode, tyro.conf.subcommand(name="decode")],
        Annotated[_evaluate(), tyro.conf.subcommand(name="eval")],
        Annotated[Bench, tyro.conf.subcommand(name="bench")],
    ]
    tyro.cli(commands).main()  # type: ignore[call-overload]


if __name__ == "__main__":
    entrypoint()
