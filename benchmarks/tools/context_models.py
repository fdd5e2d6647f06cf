"""How small a context-modelling coder could make a format-2.1 file's streams: ideal code lengths, no coder.

For ``bench_entropy.py``. Each attribute's integer streams (exactly what the file stores, in Morton order)
are measured under one adaptive context model: per context, symbol counts of everything coded before, a
symbol's probability ``(count + a) / (total + a * alphabet)``, its cost ``-log2`` of that. A decoder can
rebuild every count, so an arithmetic coder reaches these lengths within a few bytes per stream; the
smoothing ``a`` is the best of three per model (a coder would signal it in two bits). The models, one per
attribute, are the best found on the demo's and the still-life's files:

- opacities, scales: one model per column (contexts from neighbours or the other axes only cost);
- quats: the largest component's index given the previous Gaussian's; each other component given its
  column and the index;
- means: the coarse deltas by their bit length (adaptive per axis, the axis before's length as context),
  the two bits below the leading one adaptive, the rest raw; the fine part raw, in exactly the bits the
  Gaussian's level leaves (``split - level`` per axis), which a byte-oriented coder cannot know;
- features_dc: green given the previous Gaussian's green; red and blue as zig-zag differences from green,
  given green (and blue given red's difference); xz on format 2.1's colour stream codes it smaller still
  (repeats along the Morton order that these contexts do not see), so a coder would keep xz for it;
- features_rest: the degree given the previous Gaussian's; each band's codes per coefficient and colour,
  green given red's code and blue given red's and green's (the channels of one coefficient move together).

    bits = context_code_bits(streams, fields)   # {attribute: bits}
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Dict, Hashable, Iterable, List, Mapping, Sequence

import numpy as np
import torch

from nerfstudio_trim.core.codec.streams import unzigzag, zigzag
from nerfstudio_trim.core.quantize.positions import levels_of

SMOOTHING = (0.05, 0.2, 0.5)
CAP = 6  # the magnitude of a code used as another's context, capped


def adaptive_bits(
    symbols: Iterable[int], contexts: Iterable[Hashable], alphabet: int, smoothing: float
) -> float:
    """Code length in bits of ``symbols`` (each < ``alphabet``) under counts kept per context."""
    counts: Dict[Hashable, Dict[int, int]] = defaultdict(lambda: defaultdict(int))
    totals: Dict[Hashable, int] = defaultdict(int)
    bits = 0.0
    for symbol, context in zip(symbols, contexts):
        seen = counts[context]
        bits -= math.log2((seen[symbol] + smoothing) / (totals[context] + smoothing * alphabet))
        seen[symbol] += 1
        totals[context] += 1
    return bits


def model_bits(symbols: Sequence[int], contexts: Sequence[Hashable], alphabet: int) -> float:
    """The best of :data:`SMOOTHING` for one model."""
    symbols = [int(s) for s in symbols]
    return min(adaptive_bits(symbols, contexts, alphabet, a) for a in SMOOTHING)


def bit_length_bits(values: Sequence[int], contexts: Sequence[Hashable]) -> float:
    """Large alphabets: each value's bit length coded adaptively per context, the two bits below its leading
    one adaptively per (context, length, position), the rest raw."""
    values = [int(v) for v in values]
    lengths = [v.bit_length() for v in values]
    top_symbols: List[int] = []
    top_contexts: List[Hashable] = []
    raw = 0
    for value, length, context in zip(values, lengths, contexts):
        for position in range(length - 1):
            if position < 2:
                top_symbols.append((value >> (length - 2 - position)) & 1)
                top_contexts.append((context, length, position))
            else:
                raw += 1
    return model_bits(lengths, list(contexts), 65) + model_bits(top_symbols, top_contexts, 2) + raw


def previous(column: np.ndarray, first: int = 0) -> List[int]:
    """Each Gaussian's predecessor's value in file order (``first`` for the first)."""
    return [first] + [int(v) for v in column[:-1]]


def per_column(array: np.ndarray) -> float:
    array = array.reshape(array.shape[0], -1)
    alphabet = int(array.max(initial=0)) + 1
    return sum(model_bits(column, [0] * len(column), alphabet) for column in array.T)


def quats_bits(streams: Sequence[np.ndarray], fields: Mapping) -> float:
    index, components = streams
    bits = model_bits(index, previous(index), 4)
    alphabet = 2 ** int(fields["bits"])
    return bits + sum(model_bits(components[:, k], [int(i) for i in index], alphabet) for k in range(3))


def means_bits(streams: Sequence[np.ndarray], fields: Mapping, scales: np.ndarray) -> float:
    coarse, _ = streams
    lengths = [[int(v).bit_length() for v in column] for column in coarse.T]
    bits = bit_length_bits(coarse[:, 0], [(0, c) for c in [0] + lengths[0][:-1]])
    bits += bit_length_bits(coarse[:, 1], [(1, c) for c in lengths[0]])
    bits += bit_length_bits(coarse[:, 2], [(2, a, b) for a, b in zip(lengths[0], lengths[1])])
    level = levels_of(
        torch.from_numpy(scales.astype(np.int64)), fields["level_offset"], fields["level_divisor"]
    )
    return bits + 3 * float((int(fields["split"]) - level).clamp(min=0).sum())


def colour_bits(streams: Sequence[np.ndarray], fields: Mapping) -> float:
    (stored,) = streams
    codes = stored.astype(np.int64)
    if fields["encoding"] == "levels-green-differences":  # back to the three channels' codes
        green = codes[:, 1]
        codes = np.stack([green + unzigzag(codes[:, 0]), green, green + unzigzag(codes[:, 2])], axis=1)
    alphabet = 2 ** int(fields["bits"])
    green = codes[:, 1]
    red, blue = (zigzag(codes[:, c] - green).astype(np.int64) for c in (0, 2))
    bits = model_bits(green, [p // 16 for p in previous(green, alphabet // 2)], alphabet)
    bits += model_bits(red, [int(g) // 32 for g in green], 2 * alphabet)
    return bits + model_bits(
        blue, [(int(g) // 32, min(int(r), 15) // 2) for g, r in zip(green, red)], 2 * alphabet
    )


def sh_bands_bits(streams: Sequence[np.ndarray], fields: Mapping) -> float:
    if not streams:  # SH degree 0: nothing stored
        return 0.0
    degree, *bands = streams
    bits = model_bits(degree, previous(degree), len(bands) + 1)
    for number, stored in enumerate(bands, start=1):
        if stored.size == 0:
            continue
        coefficients = 2 * number + 1  # stored coefficient by coefficient (format 2.1): back to [n, 2l + 1, 3]
        band = stored.reshape(coefficients, -1, 3).transpose(1, 0, 2)
        alphabet = int(band.max()) + 1
        for k in range(band.shape[1]):
            red, green, blue = (band[:, k, c] for c in range(3))
            bits += model_bits(red, [0] * len(red), alphabet)
            bits += model_bits(green, [min(int(r), CAP) for r in red], alphabet)
            bits += model_bits(
                blue, [(min(int(r), CAP), min(int(g), CAP)) for r, g in zip(red, green)], alphabet
            )
    return bits


def context_code_bits(
    streams: Mapping[str, Sequence[np.ndarray]], fields: Mapping[str, Mapping]
) -> Dict[str, float]:
    """Ideal code length in bits per attribute; ``streams``/``fields``: each attribute codec's ``write`` output."""
    models: Dict[str, Callable[[], float]] = {
        "opacities": lambda: per_column(streams["opacities"][0]),
        "scales": lambda: per_column(streams["scales"][0]),
        "quats": lambda: quats_bits(streams["quats"], fields["quats"]),
        "means": lambda: means_bits(streams["means"], fields["means"], streams["scales"][0]),
        "features_dc": lambda: colour_bits(streams["features_dc"], fields["features_dc"]),
        "features_rest": lambda: sh_bands_bits(streams["features_rest"], fields["features_rest"]),
    }
    return {name: model() for name, model in models.items() if name in streams}
