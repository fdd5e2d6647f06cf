"""Header fields every format version shares (schemas of ``core.codec.schema``): the count of Gaussians, the SH
degree, the compression, the coordinate frame, the render hints and the informational source."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from nerfstudio_trim.core.codec.schema import Array, Float, Int, Matrix, Object, Scalars, Schema, Str
from nerfstudio_trim.core.scene import MAX_SH_DEGREE


def common_fields(frame_names: Optional[Tuple[str, ...]]) -> Dict[str, Schema]:
    """The shared top-level fields; ``frame_names``: the frame names a version allows (None: any string)."""
    return {
        "count": Int(0, 2**62),
        "sh_degree": Int(0, MAX_SH_DEGREE),
        "compression": Str(choices=("xz",)),
        "frame": Object({"name": Str(choices=frame_names), "dataparser_transform": Matrix(3, 4),
                         "dataparser_scale": Float(1e-30)},
                        optional=() if frame_names else ("name",), ignore_unknown=True),
        "render": Object({"background": Array(Float(0.0, 1.0), length=3),
                          "rasterize_mode": Str(choices=("classic", "antialiased"))}, ignore_unknown=True),
        "source": Scalars(),
    }  # fmt: skip
