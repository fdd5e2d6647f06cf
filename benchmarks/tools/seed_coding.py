"""The seed method's coding ("Trimming the fat"), for comparison: the SH coefficients as 8-bit unsigned
integers (one min/max range for the colour, one for the higher bands), every other parameter as float16, the
whole LZMA-compressed. Benchmark only: not a format this project reads or writes.

    blob = encode_seed(params); decoded = decode_seed(blob)
"""

from __future__ import annotations

import json
import lzma
import struct
from typing import Dict, List, Tuple

import numpy as np
import torch

FLOAT16 = ("means", "scales", "quats", "opacities")
"""Parameters stored as float16, in this order."""
EIGHT_BIT = ("features_dc", "features_rest")
"""SH coefficients stored as uint8 codes over one range each, in this order."""


def encode_seed(params: Dict[str, torch.Tensor]) -> bytes:
    """splatfacto's parameters [N, ...] (float) as the seed codes them: a JSON header (shapes, ranges; its
    length as 4 bytes) and the arrays, LZMA (preset 9, extreme) over all of it."""
    header: Dict[str, object] = {"shapes": {name: list(params[name].shape) for name in FLOAT16 + EIGHT_BIT}, "ranges": {}}
    chunks: List[bytes] = [params[name].detach().cpu().numpy().astype(np.float16).tobytes() for name in FLOAT16]
    for name in EIGHT_BIT:
        values = params[name].detach().cpu().float()
        low, high = (float(values.min()), float(values.max())) if values.numel() else (0.0, 0.0)
        header["ranges"][name] = [low, high]  # type: ignore[index]
        step = (high - low) / 255 or 1.0
        chunks.append(((values - low) / step).round().clamp(0, 255).to(torch.uint8).numpy().tobytes())
    head = json.dumps(header).encode()
    return lzma.compress(struct.pack("<I", len(head)) + head + b"".join(chunks), preset=9 | lzma.PRESET_EXTREME)


def decode_seed(blob: bytes) -> Dict[str, torch.Tensor]:
    """The parameters ``encode_seed`` coded, as float32 tensors."""
    raw = lzma.decompress(blob)
    (length,) = struct.unpack_from("<I", raw)
    header = json.loads(raw[4 : 4 + length])
    offset, params = 4 + length, {}
    for name in FLOAT16 + EIGHT_BIT:
        shape: Tuple[int, ...] = tuple(header["shapes"][name])
        count = int(np.prod(shape))
        if name in FLOAT16:
            values = torch.from_numpy(np.frombuffer(raw, np.float16, count, offset).astype(np.float32))
            offset += 2 * count
        else:
            low, high = header["ranges"][name]
            codes = torch.from_numpy(np.frombuffer(raw, np.uint8, count, offset).astype(np.float32))
            values = low + codes * ((high - low) / 255)
            offset += count
        params[name] = values.reshape(shape)
    return params
