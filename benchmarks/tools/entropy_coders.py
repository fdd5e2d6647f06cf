"""Entropy coders compared on the streams of a format-2.1 file, for ``bench_entropy.py``; runs in the small
environment ``make bench-tools`` makes (numpy, zstandard, constriction).

    python entropy_coders.py STREAMS_DIR      # STREAMS_DIR/manifest.json + one NAME.npy per stream

Each stream is an [n, c] array of non-negative integers. Coders:
- xz (preset 9 extreme) and zstd (levels 19 and 22, and 22 with long-distance matching and a 128 MiB
  window) over the stream stored as the file stores it (column by column, bytes shuffled);
- an adaptive range coder (constriction's queue coder) with one model per column of each stream: the
  model of a block of 4,096 symbols is the counts of all earlier symbols of that column plus one (no
  table is stored: a decoder rebuilds the same counts), over the column's alphabet 0..max.
Prints JSON: per stream and coder, bytes, encode and decode seconds; decoding is checked against the input.
"""

import json
import lzma
import sys
import time
from pathlib import Path

import constriction
import numpy as np
import zstandard

BLOCK = 4096


def column_bytes(array: np.ndarray) -> bytes:
    columns = np.ascontiguousarray(array.reshape(array.shape[0], -1).T)
    raw = columns.view(np.uint8).reshape(-1, array.dtype.itemsize)
    return np.ascontiguousarray(raw.T).tobytes()


def timed(action):
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def adaptive_probabilities(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    """[n, alphabet] float32 model of each symbol: counts of the earlier blocks plus one."""
    blocks = (symbols.size + BLOCK - 1) // BLOCK
    counts = np.ones((blocks, alphabet), dtype=np.float64)
    for block in range(1, blocks):
        counts[block] = counts[block - 1] + np.bincount(symbols[(block - 1) * BLOCK : block * BLOCK], minlength=alphabet)
    return np.repeat(counts, BLOCK, axis=0)[: symbols.size].astype(np.float32)


def range_code(array: np.ndarray):
    """(bytes, encode s, decode s) of the adaptive range coder over every column of ``array``."""
    columns = array.reshape(array.shape[0], -1).T.astype(np.int64)
    model = constriction.stream.model.Categorical(perfect=False)
    encode_s = decode_s = 0.0
    total = 0
    for column in columns:
        if column.size == 0:
            continue
        alphabet = int(column.max()) + 1
        probabilities = adaptive_probabilities(column, alphabet)
        symbols = column.astype(np.int32)

        def encode():
            encoder = constriction.stream.queue.RangeEncoder()
            encoder.encode(symbols, model, probabilities)
            return encoder.get_compressed()

        seconds, compressed = timed(encode)
        encode_s += seconds
        seconds, decoded = timed(lambda: constriction.stream.queue.RangeDecoder(compressed).decode(model, probabilities))
        decode_s += seconds
        assert np.array_equal(decoded, symbols)
        total += compressed.nbytes + 4  # + the column's alphabet size
    return total, encode_s, decode_s


def main() -> None:
    folder = Path(sys.argv[1])
    manifest = json.loads((folder / "manifest.json").read_text())
    long_mode = zstandard.ZstdCompressionParameters.from_level(22, window_log=27, enable_ldm=True)
    coders = {
        "xz-9e": (lambda b: lzma.compress(b, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME), lzma.decompress),
        "zstd-19": (zstandard.ZstdCompressor(level=19).compress, zstandard.ZstdDecompressor().decompress),
        "zstd-22": (zstandard.ZstdCompressor(level=22).compress, zstandard.ZstdDecompressor().decompress),
        "zstd-22-long": (zstandard.ZstdCompressor(compression_params=long_mode).compress,
                         zstandard.ZstdDecompressor(max_window_size=2**27).decompress),
    }  # fmt: skip
    rows = []
    for stream in manifest["streams"]:
        array = np.load(folder / f"{stream['name']}.npy", allow_pickle=False)
        raw = column_bytes(array)
        for coder, (encode, decode) in coders.items():
            encode_s, data = timed(lambda: encode(raw))
            decode_s, back = timed(lambda: decode(data))
            assert back == raw
            rows.append({"stream": stream["name"], "coder": coder, "bytes": len(data), "encode_s": encode_s, "decode_s": decode_s})
        size, encode_s, decode_s = range_code(array)
        rows.append({"stream": stream["name"], "coder": "adaptive range coder (constriction)", "bytes": size,
                     "encode_s": encode_s, "decode_s": decode_s})  # fmt: skip
    versions = {"zstandard": zstandard.__version__, "zstd": zstandard.ZSTD_VERSION, "constriction": "0.5.0" if not hasattr(constriction, "__version__") else constriction.__version__}
    print(json.dumps({"rows": rows, "versions": versions}))


main()
