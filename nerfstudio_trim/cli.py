"""``ns-trim``: work with trimmed scenes outside ``ns-train``.

    ns-trim export --load-config RUN/config.yml --output-dir DIR   # as ns-export trimmed-splat
    ns-trim info FILE.nstrim                                       # header and size per attribute
    ns-trim decode FILE.nstrim --output scene.ply                  # standard 3DGS PLY
    ns-trim eval FILE.nstrim --data DATA                           # PSNR/SSIM/LPIPS on the eval views
    ns-trim bench --baseline RUN/config.yml --data DATA            # the results table of one scene

Every failure is one ``error:`` line and exit status 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import tyro
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typing_extensions import Annotated

from nerfstudio_trim.bench import Bench
from nerfstudio_trim.core.codec.nstrim import read_file, read_file_with_header
from nerfstudio_trim.core.files import check_output, make_dir
from nerfstudio_trim.core.codec.ply import ply_size, write_ply
from nerfstudio_trim.core.text import printable
from nerfstudio_trim.errors import install_excepthook

console = Console()


@dataclass
class Info:
    """Print a .nstrim file's header and its size per attribute (the file is fully verified first)."""

    file: tyro.conf.Positional[Path]
    """The .nstrim file."""

    def main(self) -> None:
        header, scene = read_file_with_header(self.file)  # checksum, limits and every stream verified
        size, count = self.file.stat().st_size, header["count"]
        summary = (f": {count:,} Gaussians, SH degree {header['sh_degree']}, {size:,} bytes "
                   f"({size / max(count, 1):.1f} bytes per Gaussian)")  # fmt: skip
        console.print(Text.assemble((printable(self.file), "bold"), summary))
        table = Table("attribute", "dtype", "shape", "encoding", "raw bytes", "stored bytes", "bytes/Gaussian", "share")
        for entry in header["attributes"]:
            raw = count * math.prod(entry["shape"]) * np.dtype(entry["dtype"]).itemsize
            stored = entry["compressed_bytes"]
            encoding = entry["encoding"] + (f" per {entry['granularity']}" if "granularity" in entry else "")
            cells = (entry["name"], entry["dtype"], entry["shape"], encoding, f"{raw:,}", f"{stored:,}",
                     f"{stored / max(count, 1):.2f}", f"{stored / size:.1%}")  # fmt: skip
            table.add_row(*(Text(printable(cell)) for cell in cells))
        overhead = size - sum(entry["compressed_bytes"] for entry in header["attributes"])
        table.add_row("header + preamble", "", "", "", "", f"{overhead:,}", "", f"{overhead / size:.1%}")
        console.print(table)
        print_plain(f"PLY of the same Gaussians: {ply_size(count, scene.sh_degree):,} bytes "
                    f"({ply_size(count, scene.sh_degree) / size:.1f}x larger)")  # fmt: skip
        frame = header["frame"]
        print_plain(f"frame: {printable(frame['name'])}, dataparser scale {frame['dataparser_scale']:.6g}, "
                    f"transform {frame['dataparser_transform']}")  # fmt: skip
        print_plain(f"render: {printable(header['render'])}")
        if header.get("source"):
            print_plain(f"source: {printable(header['source'])}")


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

    def main(self) -> None:
        check_output(self.output, self.file)
        scene = read_file(self.file)
        make_dir(self.output.parent)
        size = write_ply(self.output, scene.gaussians.dequantize(), scene.sh_degree)
        print_plain(f"wrote {printable(self.output)}: {scene.gaussians.count:,} Gaussians, {size:,} bytes")


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
